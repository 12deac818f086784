"""What does the member want? Commands and buttons first, then whole-message intents, then the articles.

Below the answer threshold the assistant asks which of the top topics was meant; below the clarify
threshold it says what it can help with. It never answers confidently with a topic that is not clearly ahead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from bot import text
from bot.intents import control, smalltalk
from bot.intents.base import Intent
from bot.knowledge import KnowledgeBase, Match

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
MARGIN = 0.06  # how far the best topic must lead the next one to be answered without asking
CLEAR_LEAD = 0.3  # a lead this large answers even a loosely worded question
MIN_EVIDENCE = 1.2  # a lone common word ("training") is too little to answer on: ask instead
# a loosely worded question is answered when the best topic leads by this much, with this much evidence
# (summed word weights) making up this share of the question's weight
SUPPORTED_LEAD, SUPPORTED_EVIDENCE, SUPPORTED_SHARE = 0.14, 5.0, 0.4
# a sentence ends at . ! ? ; followed by a space or the end (not inside "caregistry.org" or an e-mail
# address), at Chinese sentence marks, and at line breaks
SENTENCE_END = re.compile(r"(?<=[.!?;])(?=\s|$)\s*|(?<=[。！？；])\s*|\n+")
MIN_SENTENCE_WORDS = 3  # content words; fewer ("Hi there.", "Where do I start?") say nothing of the subject


@dataclass(frozen=True, slots=True)
class Understanding:
    """The outcome of understanding one message."""

    kind: Kind
    name: str | None = None  # intent or command name, or the topic id
    score: float = 0.0
    alternatives: tuple[str, ...] = ()
    argument: str = ""  # a command's argument, or the chosen language


def _content_key(normalized: str) -> str:
    """The words that carry meaning ("any announcements" and "announcements" say the same)."""
    return " ".join(word for word in normalized.split() if word not in text.STOPWORDS)


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


def _content_size(sentence: str) -> float:
    """How many content words a sentence has (a run of Chinese counts one for every two characters)."""
    size = 0.0
    for word in text.words(sentence):
        if text.is_cjk(word):
            size += len(word) / 2
        elif word not in text.STOPWORDS:
            size += 1
    return size


def parse_command(message: str) -> tuple[str, str] | None:
    """``/name argument`` (also ``/name@botname``) as (name, argument); None when not a command."""
    stripped = message.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, _, argument = stripped[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return name, argument.strip()


class Understander:
    """Turns a message into an ``Understanding`` for one registry's knowledge base."""

    def __init__(
        self, knowledge: KnowledgeBase, *, answer_threshold: float, clarify_threshold: float
    ) -> None:
        self.knowledge = knowledge
        self.answer_threshold = answer_threshold
        self.clarify_threshold = clarify_threshold

    def understand(self, message: str, registry: str, lang: str | None = None) -> Understanding:
        if not text.normalize(message):
            return Understanding("empty")
        command = parse_command(message)
        if command is not None:
            name, argument = command
            return Understanding("command", COMMANDS.get(name, name), 1.0, argument=argument)
        chosen = language_choice(message)
        if chosen is not None:
            return Understanding("language", "language", 1.0, argument=chosen)
        intent = match_intent(message)
        if intent is not None:
            return Understanding("intent", intent, 1.0)
        return self.search(message, registry, lang)

    def search(self, message: str, registry: str, lang: str | None = None) -> Understanding:
        """Knowledge search alone: answer, clarify between the top topics, or unknown.

        A long message is often background first and the question after ("I can't make it on Saturday, my
        son has a game. How do I get off the list?"). Unless the whole message is answered outright, each
        sentence is tried (against the whole message's not_about markers): one topic answered by its
        sentences is the answer, several are asked back about. Only then is the whole message answered on
        the looser rule (``_well_supported``).
        """
        matches = self.knowledge.search(message, registry, lang=lang, limit=4)
        whole = self._decide(matches, loose=False)
        if whole.kind == "answer":
            return whole
        parts = SENTENCE_END.split(message)
        sentences = [part for part in parts if _content_size(part) >= MIN_SENTENCE_WORDS]
        if len(sentences) >= 2:
            answers = [
                understood
                for understood in (
                    self._decide(
                        self.knowledge.search(part, registry, lang=lang, limit=4, markers_in=message),
                        loose=True,
                    )
                    for part in sentences
                )
                if understood.kind == "answer"
            ]
            topics = tuple(dict.fromkeys(understood.name for understood in answers if understood.name))
            if len(topics) == 1:
                return max(answers, key=lambda understood: understood.score)
            if topics:
                return Understanding("clarify", None, max(u.score for u in answers), topics[:3])
        return self._decide(matches, loose=True)

    def _decide(self, matches: list[Match], *, loose: bool) -> Understanding:
        """Answer, clarify or unknown from ranked matches; ``loose`` also answers a well-supported favourite
        (a chatty question plainly about one topic: much of it speaks for that topic and nothing else comes
        close; out-of-scope questions share a word or two with an article, not a passage)."""
        if not matches or matches[0].score < self.clarify_threshold:
            return Understanding("unknown", None, matches[0].score if matches else 0.0)
        best = matches[0]
        runner_up = matches[1].score if len(matches) > 1 else 0.0
        lead = best.score - runner_up
        clear_lead = lead >= CLEAR_LEAD and best.score >= self.clarify_threshold + 0.05
        well_supported = (
            loose
            and lead >= SUPPORTED_LEAD
            and best.evidence >= SUPPORTED_EVIDENCE
            and best.coverage >= SUPPORTED_SHARE
        )
        enough = best.evidence >= MIN_EVIDENCE
        if enough and (
            (best.score >= self.answer_threshold and lead >= MARGIN) or clear_lead or well_supported
        ):
            others = tuple(m.topic for m in matches[1:3] if m.score >= self.clarify_threshold)
            return Understanding("answer", best.topic, best.score, others)
        close = tuple(
            m.topic for m in matches[:3] if m.score >= max(self.clarify_threshold, best.score - 0.35)
        )
        return Understanding("clarify", None, best.score, close)
