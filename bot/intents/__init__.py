"""What does the member want? Commands and buttons first, then whole-message intents, then the articles.

Which article answers is the topic model's call (``bot.understanding``): below its answer threshold the
assistant asks which of the likely topics was meant, and below its clarify threshold it says what it can
help with. It never answers confidently with a topic that is not clearly ahead.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from bot import text
from bot.intents import control, smalltalk
from bot.intents.base import Intent
from bot.intents.requests import asks_about_hours, asks_for_person
from bot.knowledge import KnowledgeBase
from bot.understanding.decide import decide
from bot.understanding.message import Message
from bot.understanding.model import OUT_OF_SCOPE, TopicModel

INTENTS: tuple[Intent, ...] = smalltalk.INTENTS + control.INTENTS

# Slash commands (Telegram menu, typed anywhere) and what they mean.
COMMANDS = {
    "start": "greeting",
    "help": "help",
    "language": "language",
    "idioma": "language",
    "cancel": "cancel",
    "human": "human",
    "hours": "hours",
    "logout": "logout",
    "notice": "notice",
    "link": "link",
    "status": "status",
}

# Names of languages as members write them; the whole message naming one is a choice of language.
LANGUAGE_NAMES = {
    "en": ("english", "ingles", "英文", "英语", "en"),
    "es": ("espanol", "spanish", "castellano", "西班牙语", "西班牙文", "es"),
    "zh_Hans": (
        "中文",
        "chinese",
        "chino",
        "mandarin",
        "mandarin chinese",
        "简体中文",
        "普通话",
        "汉语",
        "华语",
        "zh",
        "国语",
        "chino mandarin",
    ),
}
_LANGUAGE_FILLERS = frozenset(
    """
    in en please por favor speak habla hablas hablar language idioma lenguaje switch to change
    cambiar a al use usar can you puedes 用 说 请 讲 请用 改成 换成 切换 i want quiero
    """.split()
)

Kind = Literal["command", "intent", "language", "answer", "clarify", "unknown", "empty"]


@dataclass(frozen=True, slots=True)
class Understanding:
    """The outcome of understanding one message."""

    kind: Kind
    name: str | None = None  # intent or command name, or the topic id
    score: float = 0.0
    alternatives: tuple[str, ...] = ()
    argument: str = ""  # a command's argument, or the chosen language


# small words that change what a phrase means ("log in" and "log out", "sign up" and "sign out")
_PARTICLES = frozenset("in out up off on back down no not".split())


def _content_key(normalized: str) -> str:
    """The words that carry meaning ("any announcements" and "announcements" say the same)."""
    return " ".join(word for word in normalized.split() if word not in text.STOPWORDS or word in _PARTICLES)


@functools.cache
def _intent_phrases() -> dict[str, str]:
    exact: dict[str, str] = {}
    shortened: dict[str, str] = {}
    for intent in INTENTS:
        for variants in intent.phrases.values():
            for phrase in variants:
                normalized = text.normalize(phrase)
                exact.setdefault(normalized, intent.name)
                key = _content_key(normalized)
                if key:
                    shortened.setdefault(key, intent.name)
    # a phrase as written beats another phrase reduced to its content words ("ayuda" is help, even though
    # "gracias por la ayuda" reduces to "ayuda")
    return shortened | exact


def language_choice(message: str) -> str | None:
    """The language a message asks for when all it says is a language ("español", "in English please")."""
    normalized = text.normalize(message)
    if not normalized:
        return None
    for lang, names in LANGUAGE_NAMES.items():
        if normalized in names:
            return lang
    words = [w for w in normalized.split() if w not in _LANGUAGE_FILLERS]
    if text.has_cjk(normalized) and len(words) == 1:
        rest = words[0]
        for filler in sorted(_LANGUAGE_FILLERS, key=len, reverse=True):
            if text.has_cjk(filler):
                rest = rest.replace(filler, "")
        words = [rest]
    chosen = {lang for word in words for lang, names in LANGUAGE_NAMES.items() if word in names}
    if (
        len(chosen) == 1
        and len(words) <= 2
        and all(any(word in names for names in LANGUAGE_NAMES.values()) for word in words)
    ):
        return chosen.pop()
    return None


@functools.lru_cache(maxsize=4096)
def match_intent(message: str) -> str | None:
    """The intent a whole (short) message expresses, or None."""
    normalized = text.normalize(message)
    if not normalized:
        return None
    phrases = _intent_phrases()
    if normalized in phrases:
        return phrases[normalized]
    key = _content_key(normalized)
    if key and key in phrases and len(key.split()) <= 3:
        return phrases[key]
    if len(normalized.split()) > 5 or len(normalized) < 4:
        return None
    found = process.extractOne(normalized, phrases.keys(), scorer=fuzz.ratio, score_cutoff=88)
    return phrases[found[0]] if found is not None else None


def parse_command(message: str) -> tuple[str, str] | None:
    """``/name argument`` (also ``/name@botname``) as (name, argument); None when not a command."""
    stripped = message.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, argument = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return name, argument.strip()


class Understander:
    """Turns a member's message into an ``Understanding``: commands, a language, a whole-message intent, a
    person or the hours asked for anywhere in the message, then the topic model of the registry."""

    def __init__(self, knowledge: KnowledgeBase, models: Mapping[str, TopicModel]) -> None:
        self.knowledge = knowledge
        self.models = models

    def understand(self, message: Message, registry: str, *, topics: bool = True) -> Understanding:
        """What ``message`` is; ``topics=False`` stops before the topic model (kind "unknown"), for an
        answer inside a flow, which needs the model only if the answer does not fit."""
        if message.empty:
            return Understanding("empty")
        command = parse_command(message.raw)
        if command is not None:
            name, argument = command
            return Understanding("command", COMMANDS.get(name, name), 1.0, argument=argument)
        chosen = language_choice(message.raw)
        if chosen is not None:
            return Understanding("language", "language", 1.0, argument=chosen)
        intent = match_intent(message.raw)
        if intent is not None:
            return Understanding("intent", intent, 1.0)
        if asks_about_hours(message):  # before a person: "I need someone, what time do you close?"
            return Understanding("intent", "hours", 1.0)
        if asks_for_person(message):
            return Understanding("intent", "human", 1.0)
        return self.search(message, registry) if topics else Understanding("unknown")

    def search(self, message: Message, registry: str) -> Understanding:
        """The topic model alone: answer, ask back between the likely topics, or unknown."""
        model = self.models.get(registry)
        if model is None:
            return Understanding("unknown")
        words = message.words
        checked: dict[str, bool] = {}  # each topic's not_about markers are checked once per message

        def excluded(topic: str) -> bool:
            if topic not in checked:
                checked[topic] = self.knowledge.excludes(registry, topic, words)
            return checked[topic]

        decision = decide(model, message, excluded=excluded)
        return Understanding(decision.verdict, decision.topic, decision.score, decision.alternatives)

    def next_likely(self, message: Message, registry: str, *, besides: str, count: int = 2) -> list[str]:
        """The likeliest topics for ``message`` other than ``besides`` and those it is not about, at most
        ``count`` (what to offer when the answer given did not help)."""
        model = self.models.get(registry)
        if model is None or message.empty:
            return []
        found: list[str] = []
        for topic, _ in model.ranked(message):
            if topic in (OUT_OF_SCOPE, besides) or self.knowledge.excludes(registry, topic, message.words):
                continue
            found.append(topic)
            if len(found) == count:
                break
        return found
