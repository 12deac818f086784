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
MAX_CORRECTIONS = 65536
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
    vocabulary: dict[str, int]
    idf: Vector
    offset: int

    def weights(self, features: list[str]) -> tuple[npt.NDArray[np.intp], Vector]:
        """Row numbers and TF-IDF weights (sublinear tf, unit length) of the known features."""
        counts = Counter(self.vocabulary[f] for f in features if f in self.vocabulary)
        if not counts:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        rows = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        values: Vector = ((1.0 + np.log(tf)) * self.idf[rows]).astype(np.float32, copy=False)
        values /= np.float32(np.sqrt(values @ values))
        return rows + self.offset, values


class TopicModel:
    """Probabilities of each topic of one registry (and of "none of them") for a message."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.info: dict[str, Any] = json.loads(str(arrays["info"]))
        self.classes: tuple[str, ...] = tuple(str(c) for c in arrays["classes"])
        word_vocabulary = [str(v) for v in arrays["word_vocabulary"]]
        char_vocabulary = [str(v) for v in arrays["char_vocabulary"]]
        self._word = _Group(
            {f: i for i, f in enumerate(word_vocabulary)}, arrays["word_idf"].astype(np.float32), 0
        )
        self._char = _Group(
            {f: i for i, f in enumerate(char_vocabulary)},
            arrays["char_idf"].astype(np.float32),
            len(word_vocabulary),
        )
        self._spellings = tuple(str(w) for w in arrays["spellings"]) if "spellings" in arrays else ()
        self._known = frozenset(self._spellings)
        self._corrections: dict[str, str] = {}  # misspelt word -> the known word (or itself)
        self._weights: Vector = arrays["weights"].astype(np.float32)  # (features, classes)
        self._intercept: Vector = arrays["intercept"].astype(np.float32)
        if self._weights.shape != (len(word_vocabulary) + len(char_vocabulary), len(self.classes)):
            raise ModelError("the model's weights do not match its vocabularies")
        thresholds = self.info["thresholds"]
        self.thresholds = Thresholds(
            answer=float(thresholds["answer"]),
            clarify=float(thresholds["clarify"]),
            sentence=float(thresholds["sentence"]),
        )

    @classmethod
    def load(cls, path: Path) -> TopicModel:
        """Read a model file written by ``registry-bot kb train``."""
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return cls(dict(arrays))
        except (OSError, KeyError, ValueError) as error:
            raise ModelError(f"{path}: {error}") from error

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
        """One probability per class (``classes``), summing to 1."""
        words = tuple(self.spelled(word) for word in message.words)
        logits = self._intercept.copy()
        for group, features in (
            (self._word, word_features(words, message.lang)),
            (self._char, char_features(words)),
        ):
            rows, values = group.weights(features)
            if rows.size:
                logits += values @ self._weights[rows]
        logits -= logits.max()
        exp = np.exp(logits)
        result: Vector = exp / exp.sum()
        return result

    def ranked(self, message: Message) -> list[tuple[str, float]]:
        """Every class with its probability, most likely first."""
        probabilities = self.probabilities(message)
        order = np.argsort(-probabilities, kind="stable")
        return [(self.classes[i], float(probabilities[i])) for i in order]
