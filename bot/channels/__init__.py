"""Adapters between chat platforms and the engine. Only this package knows a platform exists."""
