"""Choosing the language of the conversation: the smallest flow, and the proof of the flow interface."""

from __future__ import annotations

from bot.config import LANGUAGES
from bot.flows.base import Flow, FlowState, Reask
from bot.i18n import N_
from bot.intents import language_choice
from bot.messages import Choice, Reply
from bot.turn import Turn

# Each language is offered under its own name, so a member who cannot read the current one finds theirs.
LANGUAGE_LABELS = {"en": "English", "es": "Español", "zh_Hans": "简体中文"}


class ChooseLanguage(Flow):
    """Ask which language to use and remember it for the conversation."""

    name = "language"
    title = N_("Choose a language")
    slots = ("language",)

    async def choices_language(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [Choice(LANGUAGE_LABELS[lang], f"s:language:language:{lang}") for lang in LANGUAGES]

    async def validate_language(self, turn: Turn, state: FlowState) -> str | Reask:
        value = turn.answer
        if value in LANGUAGES:
            return value
        chosen = language_choice(value)
        if chosen is None:
            return Reask(turn.render("flows/language/not_a_language"))
        return chosen

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        turn.set_language(state.slots["language"], explicit=True)
        return [Reply(turn.render("language_set"))]
