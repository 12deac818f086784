"""The member's message, analysed once per turn and handed to everything that reads it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from bot import text

# a sentence ends at . ! ? ; followed by a space or the end (not inside "caregistry.org" or an e-mail
# address), at Chinese sentence marks, and at line breaks
SENTENCE_END = re.compile(r"(?<=[.!?;])(?=\s|$)\s*|(?<=[。！？；])\s*|\n+")


@dataclass(frozen=True, slots=True)
class Message:
    """What the member wrote: the raw text, its normalized form and words, and its language when the text
    alone says (``None`` for "1", "ok" or an e-mail address)."""

    raw: str
    normalized: str
    words: tuple[str, ...]
    lang: str | None = None

    @classmethod
    def of(cls, raw: str, lang: str | None = None) -> Message:
        normalized = text.normalize(raw)
        return cls(raw=raw, normalized=normalized, words=tuple(normalized.split()), lang=lang)

    @property
    def empty(self) -> bool:
        return not self.normalized

    @property
    def content_size(self) -> float:
        """How many content words the message has (a run of Chinese counts one for every two characters)."""
        return content_size(self.words)

    def sentences(self) -> list[Message]:
        """The message's sentences, each analysed, in the message's language."""
        return [Message.of(part, self.lang) for part in SENTENCE_END.split(self.raw) if part.strip()]


@functools.lru_cache(maxsize=4096)
def content_size(words: tuple[str, ...]) -> float:
    size = 0.0
    for word in words:
        if text.is_cjk(word):
            size += len(word) / 2
        elif word not in text.STOPWORDS and not word.isdigit():
            size += 1
    return size
