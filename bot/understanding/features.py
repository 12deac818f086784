"""The features of a message, one definition for training and scoring so the two cannot drift apart.

Two groups, each weighted by TF-IDF and scaled to unit length on its own:

- ``word``: stemmed content words (English or Spanish Snowball, by the message's language), one shared term
  for negations and for "what is" questions, pairs of neighbouring words (function words included, so "how
  do" and "why do" differ), and Chinese characters and character pairs (after OpenCC and the Cantonese
  mapping of ``bot.text``);
- ``char``: character 2- to 5-grams of each Latin word with a space on each side, which carry typos
  ("pasword", "registery") and unseen inflections to the right words.
"""

from __future__ import annotations

import itertools

from bot import text

VERSION = "1"
CHAR_SIZES = (2, 3, 4, 5)


def word_features(words: tuple[str, ...], lang: str | None) -> list[str]:
    """The word features of a message's normalized words, written in ``lang``."""
    stem_lang = lang if lang in ("en", "es") else "en"
    latin: list[str] = []
    out: list[str] = []
    for word in words:
        if text.is_cjk(word):
            out.extend(text.cjk_terms(word))
        elif word.isdigit():
            continue
        elif word in text.NEGATIONS:
            latin.append(text.NEGATION_TERM)
            out.append(text.NEGATION_TERM)
        elif word in text.STOPWORDS:
            latin.append("_" + word)
        else:
            term = text.stem(word, stem_lang)
            latin.append(term)
            out.append(term)
    out.extend(f"{first} {second}" for first, second in itertools.pairwise(latin))
    if text.asks_what(" ".join(words)):
        out.append(text.WHAT_TERM)
    return out


def char_features(words: tuple[str, ...]) -> list[str]:
    """Character n-grams of the Latin words (Chinese is covered by the word features)."""
    out: list[str] = []
    for word in words:
        if text.is_cjk(word) or word.isdigit():
            continue
        padded = f" {word} "
        length = len(padded)
        for size in CHAR_SIZES:
            if size > length:
                break
            out.extend(padded[start : start + size] for start in range(length - size + 1))
    return out
