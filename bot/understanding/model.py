"""The topic model at run time: exported weights scored with numpy alone (no scikit-learn needed).

The file (``models/<registry>.npz``) holds each feature group's vocabulary and IDF weights, the weights of
a multinomial logistic regression (one column per class, the last class being "none of the topics"),
and a JSON record of what it was trained on (a hash of its inputs) and the thresholds chosen with it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process

from bot import text
from bot.understanding.features import char_features, word_features
from bot.understanding.message import Message

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "~none"  # the class of messages no topic answers
MIN_SPELLING = 4  # shorter words are not corrected (too many near neighbours)
SPELLING_CUTOFF = 85  # rapidfuzz ratio to take a known word for a misspelt one
MAX_CORRECTIONS = 65536  # per-word memos kept at most (misspellings, n-grams)
Vector = npt.NDArray[np.float32]


class ModelError(ValueError):
    """A model file that is missing or cannot be read."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where the decision lines are, chosen when the model was trained (see ``train.choose_thresholds``)."""

    answer: float  # the best topic's probability needed to answer with it
    clarify: float  # below this for every topic, the assistant says what it can help with
    sentence: float  # a sentence of a long message needs this to speak for the whole message


@dataclass(frozen=True, slots=True)
class _Group:
    """A feature group's vocabulary; its numbers start at ``offset`` in the weights' rows."""

    vocabulary: dict[str, int]
    offset: int

    def rows(self, features: list[str]) -> list[int]:
        """The row numbers of the known ``features`` (unknown ones carry no weight)."""
        offset = self.offset
        return [number + offset for number in map(self.vocabulary.get, features) if number is not None]


def read_arrays(path: Path) -> dict[str, Any]:
    """The arrays of a model file; ``ModelError`` when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return dict(arrays)
    except (OSError, KeyError, ValueError) as error:
        raise ModelError(f"{path}: {error}") from error


def _strings(values: Any) -> list[str]:
    """An array of numpy strings read from the file as a list of Python strings."""
    strings: list[str] = np.asarray(values, dtype=np.str_).tolist()
    return strings


class TopicModel:
    """Probabilities of each topic of one registry (and of "none of them") for a message."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.info: dict[str, Any] = json.loads(str(arrays["info"]))
        self.classes: tuple[str, ...] = tuple(_strings(arrays["classes"]))
        # tens of thousands of strings: numpy's tolist and dict(zip) build them at C speed
        word_vocabulary = _strings(arrays["word_vocabulary"])
        char_vocabulary = _strings(arrays["char_vocabulary"])
        self._word = _Group(dict(zip(word_vocabulary, range(len(word_vocabulary)), strict=True)), 0)
        self._char = _Group(
            dict(zip(char_vocabulary, range(len(char_vocabulary)), strict=True)), len(word_vocabulary)
        )
        # arrays read from the file are float32 already and never written to: no copies
        idf = np.concatenate([arrays["word_idf"], arrays["char_idf"]])
        self._idf: Vector = idf.astype(np.float32, copy=False)
        self._spellings = tuple(_strings(arrays["spellings"])) if "spellings" in arrays else ()
        self._known = frozenset(self._spellings)
        self._corrections: dict[str, str] = {}  # misspelt word -> the known word (or itself)
        self._char_rows: dict[str, list[int]] = {}  # a word's character n-grams, as vocabulary numbers
        self._weights: Vector = arrays["weights"].astype(np.float32, copy=False)  # (features, classes)
        self._intercept: Vector = arrays["intercept"].astype(np.float32, copy=False)
        if self._weights.shape != (len(word_vocabulary) + len(char_vocabulary), len(self.classes)):
            raise ModelError("the model's weights do not match its vocabularies")
        if self.classes[-1] != OUT_OF_SCOPE:
            raise ModelError(f"the model's last class is not {OUT_OF_SCOPE!r}")
        thresholds = self.info["thresholds"]
        self.thresholds = Thresholds(
            answer=float(thresholds["answer"]),
            clarify=float(thresholds["clarify"]),
            sentence=float(thresholds["sentence"]),
        )

    @classmethod
    def load(cls, path: Path) -> TopicModel:
        """Read a model file written by ``registry-bot kb train``."""
        return cls.of(read_arrays(path), source=path)

    @classmethod
    def of(cls, arrays: dict[str, Any], *, source: Path) -> TopicModel:
        """The model of ``arrays`` read from ``source``; ``ModelError`` (naming it) when they are not one."""
        try:
            return cls(arrays)
        except (KeyError, ValueError) as error:
            raise ModelError(f"{source}: {error}") from error

    @property
    def inputs_hash(self) -> str:
        return str(self.info.get("inputs_hash", ""))

    def spelled(self, word: str) -> str:
        """``word``, or the known word it is a misspelling of ("trainng" -> "training")."""
        if len(word) < MIN_SPELLING or word in self._known or not word.isalpha() or text.is_cjk(word):
            return word
        corrected = self._corrections.get(word)
        if corrected is None:
            found = process.extractOne(word, self._spellings, scorer=fuzz.ratio, score_cutoff=SPELLING_CUTOFF)
            corrected = str(found[0]) if found is not None else word
            if len(self._corrections) < MAX_CORRECTIONS:
                self._corrections[word] = corrected
        return corrected

    def probabilities(self, message: Message) -> Vector:
        """One probability per class (``classes``), summing to 1.

        Each group's features are weighted by sublinear TF-IDF and scaled to unit length, as scikit-learn's
        ``TfidfVectorizer`` does in training; both groups are computed in one pass of numpy.
        """
        words = tuple(self.spelled(word) for word in message.words)
        counts = Counter(self._word.rows(word_features(words, message.lang)))
        first_char = len(counts)  # word rows come first (a Counter keeps the order rows arrive in)
        counts.update(row for word in words for row in self._word_char_rows(word))
        logits = self._intercept.copy()
        if counts:
            rows = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            values: Vector = ((1.0 + np.log(tf)) * self._idf[rows]).astype(np.float32, copy=False)
            squares = values * values
            word_norm = np.sqrt(squares[:first_char].sum()) or 1.0
            char_norm = np.sqrt(squares[first_char:].sum()) or 1.0
            values[:first_char] /= word_norm
            values[first_char:] /= char_norm
            logits += values @ self._weights[rows]
        logits -= logits.max()
        exp = np.exp(logits)
        result: Vector = exp / exp.sum()
        return result

    def _word_char_rows(self, word: str) -> list[int]:
        """The character n-grams of one word (computed once per word: words come back often)."""
        rows = self._char_rows.get(word)
        if rows is None:
            rows = self._char.rows(char_features((word,)))
            if len(self._char_rows) < MAX_CORRECTIONS:
                self._char_rows[word] = rows
        return rows

    def ranked(self, message: Message, *, floor: float = 0.0) -> list[tuple[str, float]]:
        """The classes with a probability of at least ``floor`` (and "none of them" always), most likely
        first."""
        probabilities = self.probabilities(message)
        order = np.argsort(-probabilities, kind="stable")
        values = probabilities[order].tolist()
        none = len(self.classes) - 1  # the last class is "none of the topics"
        return [
            (self.classes[i], p)
            for i, p in zip(order.tolist(), values, strict=True)
            if p >= floor or i == none
        ]
