"""registry-bot: the help desk assistant for Early Care and Education Workforce Registries."""

__version__ = "0.1.0"
