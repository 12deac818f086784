"""The registry database: models, migrations, sessions and the repository functions flows call."""
