"""Which language is a message written in? Script first, then the words it uses."""

from __future__ import annotations

import re

from bot import text
from bot.knowledge import KnowledgeBase

DECISIVE = 100  # Chinese characters: no count of words outweighs them
# E-mail addresses and web addresses say nothing about the language of the person typing them.
NOT_WORDS = re.compile(r"\S+@\S+|(?:https?://|www\.)\S+", re.IGNORECASE)


def detect_language(message: str, knowledge: KnowledgeBase | None = None, *, margin: int = 1) -> str | None:
    """``en``, ``es`` or ``zh_Hans`` when the message says so clearly enough, otherwise None: one language
    must lead the other by ``margin`` (see ``language_evidence``)."""
    lang, lead = language_evidence(message, knowledge)
    return lang if lead >= margin else None


def language_evidence(message: str, knowledge: KnowledgeBase | None = None) -> tuple[str | None, int]:
    """The language a message leans to, and by how much (0 when it does not lean at all).

    Chinese characters decide at once (mixed "我的registry ID" is Chinese). Otherwise Spanish accents,
    function words of either language, and words the articles use in only one language are counted; a
    Spanish message written without accents is still recognised by its words. Numbers never count, so a
    conversation under way can ask for more than a lone "ok" before it changes language.
    """
    message = NOT_WORDS.sub(" ", message)
    cjk = text.cjk_count(message)
    if cjk >= 2 or (cjk and len(text.words(message)) <= 2):
        return "zh_Hans", DECISIVE
    spanish = 2 * min(text.spanish_marks(message), 2)
    english = 0
    for word in text.words(message):
        if word in text.STOPWORDS_ES and word not in text.STOPWORDS_EN:
            spanish += 1
        elif word in text.STOPWORDS_EN and word not in text.STOPWORDS_ES:
            english += 1
    if knowledge is not None:
        votes = knowledge.language_votes(message)
        spanish += votes["es"]
        english += votes["en"]
    if spanish == english:
        return None, 0
    return ("es", spanish - english) if spanish > english else ("en", english - spanish)
