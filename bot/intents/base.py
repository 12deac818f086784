"""The shape of an intent: a name and the whole messages that express it, per language."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Intent:
    """Something a member may say that is not a support question (a greeting, "cancel", "help")."""

    name: str
    phrases: dict[str, tuple[str, ...]]
