"""Content gaps grouped by what they ask, across the three languages (numpy alone, at digest time).

Two questions are compared two ways:

- **their words** (in one language): the model's own word features and the character n-grams of the
  content words, TF-IDF weighted over the questions being grouped, and the cosine of the two;
- **where they stand among the registry's topics** (in any language): the question's likeness to each
  topic's article written in the question's own language (the articles of a topic say the same in English,
  Spanish and Chinese: explicit semantic analysis across languages), and the topic model's log
  probabilities of the topics. Both are measured from the registry's typical question (the mean over the
  articles' own example questions) in units of a typical question's distance from it, so a question near
  no topic in particular has a short profile, and two unknown questions are not alike just because both
  are unknown.

Questions in one language are similar when their words are, helped by their profiles; questions in two
languages only through their profiles, with a higher bar. Groups are formed by average-linkage agglomerative
clustering: two groups merge while the mean similarity between their questions stays above the bar. The
bars were chosen on the training questions (grouped by their topics), never on evaluation files.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot import text
from bot.config import LANGUAGES
from bot.knowledge import KnowledgeBase
from bot.understanding.features import char_features, word_features
from bot.understanding.message import Message
from bot.understanding.model import TopicModel

Matrix = npt.NDArray[np.float64]

SAME_LANGUAGE = 0.5  # mean similarity two groups need to merge
WORDS_SHARE = 0.6  # in one language: this much from the words, the rest from the article profiles
FLOOR = 0.3  # no two questions of a group are less alike than this
ACROSS_LANGUAGES = 0.70  # two languages: the profiles' likeness needed to count as much as SAME_LANGUAGE


@dataclass(frozen=True, slots=True)
class Question:
    """A question to group: its text and language."""

    text: str
    lang: str


def _features(message: Message) -> list[str]:
    """The model's word features, and the character n-grams of the content words only (the n-grams of
    "how do I" would make every question look like every other)."""
    content = tuple(word for word in message.words if word not in text.STOPWORDS)
    return word_features(message.words, message.lang) + char_features(content)


def _tfidf(documents: Sequence[list[str]]) -> tuple[Matrix, dict[str, int], Matrix]:
    """Rows of unit-length sublinear TF-IDF vectors, the vocabulary, and its IDF weights."""
    vocabulary: dict[str, int] = {}
    for features in documents:
        for feature in features:
            vocabulary.setdefault(feature, len(vocabulary))
    frequency = np.zeros(len(vocabulary))
    for features in documents:
        for feature in set(features):
            frequency[vocabulary[feature]] += 1
    idf = np.log((1 + len(documents)) / (1 + frequency)) + 1
    return _vectors(documents, vocabulary, idf), vocabulary, idf


def _vectors(documents: Iterable[list[str]], vocabulary: dict[str, int], idf: Matrix) -> Matrix:
    rows = []
    for features in documents:
        row = np.zeros(len(vocabulary))
        for feature, count in Counter(features).items():
            column = vocabulary.get(feature)
            if column is not None:
                row[column] = (1 + math.log(count)) * idf[column]
        norm = np.linalg.norm(row)
        rows.append(row / norm if norm else row)
    return np.array(rows).reshape(len(rows), len(vocabulary))


class ArticleSpace:
    """Where a question stands among one registry's topics, the same whatever its language: its likeness
    to each topic's article in the question's own language, and the topic model's view of it (log
    probabilities), each measured from the registry's typical question (the mean over the articles' own
    example questions), so that what every registry question shares does not make all of them alike."""

    def __init__(self, knowledge: KnowledgeBase, registry: str, model: TopicModel | None = None) -> None:
        self.topics = tuple(knowledge.topics(registry))
        self.model = model
        self._spaces: dict[str, tuple[Matrix, dict[str, int], Matrix]] = {}
        typical: list[Question] = []
        for lang in LANGUAGES:
            documents: list[list[str]] = []
            for topic in self.topics:
                article = knowledge.article(registry, topic, lang)
                if article is None:
                    documents.append([])
                    continue
                words = " ".join((article.title, *article.questions, *article.keywords, article.body))
                documents.append(_features(Message.of(words, lang)))
                if article.lang == lang:
                    typical.extend(Question(q, lang) for q in (article.title, *article.questions))
            self._spaces[lang] = _tfidf(documents)
        self._centre: list[tuple[Matrix, float]] = []  # per part: the typical question, its usual distance
        if typical:
            for part in self._parts(typical):
                centre = part.mean(axis=0)
                self._centre.append((centre, float(np.median(np.linalg.norm(part - centre, axis=1))) or 1.0))

    def _parts(self, questions: Sequence[Question]) -> list[Matrix]:
        parts = [self._articles(questions)]
        if self.model is not None:
            parts.append(self._model(questions))
        return parts

    def _articles(self, questions: Sequence[Question]) -> Matrix:
        out = np.zeros((len(questions), len(self.topics)))
        for row, question in enumerate(questions):
            matrix, vocabulary, idf = self._spaces.get(question.lang) or self._spaces["en"]
            vector = _vectors([_features(Message.of(question.text, question.lang))], vocabulary, idf)[0]
            out[row] = matrix @ vector
        return out

    def _model(self, questions: Sequence[Question]) -> Matrix:
        assert self.model is not None
        # the topics alone: "none of them" is what every unknown question shares, whatever it asks
        rows = [np.log(self.model.probabilities(Message.of(q.text, q.lang))[:-1] + 1e-9) for q in questions]
        return np.array(rows, dtype=np.float64).reshape(len(questions), len(self.model.classes) - 1)

    def profiles(self, questions: Sequence[Question]) -> Matrix:
        """One row per question: how far, and which way, it stands from the typical question, in units of
        a typical question's distance (a question near no topic in particular has a short profile)."""
        parts = self._parts(questions)
        if not self._centre:
            return _unit(np.hstack(parts))
        scaled = [
            (part - centre) / distance for part, (centre, distance) in zip(parts, self._centre, strict=True)
        ]
        result: Matrix = np.hstack(scaled) / np.sqrt(len(scaled))
        return result


def _unit(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return result


def similarities(questions: Sequence[Question], space: ArticleSpace) -> Matrix:
    """How alike each two questions are (0 to 1), on one scale whichever their languages."""
    words, _, _ = _tfidf([_features(Message.of(q.text, q.lang)) for q in questions])
    profiles = space.profiles(questions)
    lexical = words @ words.T
    norms = np.linalg.norm(profiles, axis=1)
    # a cosine, but shrunk for questions that stand near no topic in particular (shorter than a typical
    # question's profile): two unknown questions are not alike just because both are unknown
    topical = np.clip((profiles @ profiles.T) / np.maximum(np.outer(norms, norms), 1.0), 0.0, 1.0)
    langs = np.array([q.lang for q in questions])
    same = langs[:, None] == langs[None, :]
    across = topical * (SAME_LANGUAGE / ACROSS_LANGUAGES)
    result: Matrix = np.where(same, WORDS_SHARE * lexical + (1 - WORDS_SHARE) * topical, across)
    np.fill_diagonal(result, 1.0)
    return np.clip(result, 0.0, 1.0)


def group(
    questions: Sequence[Question], space: ArticleSpace, *, bar: float = SAME_LANGUAGE, floor: float = FLOOR
) -> list[list[int]]:
    """The questions' indexes in groups of questions that ask the same thing, largest group first (ties:
    the group whose first question came first). Two groups merge while their questions' mean similarity
    is at least ``bar`` and no two of their questions are less alike than ``floor`` (a question that
    shares a few words with a large group does not join it on the group's own likeness)."""
    count = len(questions)
    if count == 0:
        return []
    similarity = similarities(questions, space)
    members: dict[int, list[int]] = {i: [i] for i in range(count)}
    mean, least = similarity.copy(), similarity.copy()
    np.fill_diagonal(mean, -1.0)
    alive = np.ones(count, dtype=bool)
    while True:
        allowed = alive[:, None] & alive[None, :] & (least >= floor)
        masked = np.where(allowed, mean, -1.0)
        flat = int(np.argmax(masked))
        first, second = divmod(flat, count)
        if masked[first, second] < bar:
            break
        if second < first:
            first, second = second, first
        size_first, size_second = len(members[first]), len(members[second])
        # average linkage (Lance-Williams) for the mean, complete linkage for the least alike pair
        merged = (size_first * mean[first] + size_second * mean[second]) / (size_first + size_second)
        mean[first], mean[:, first] = merged, merged
        mean[first, first] = -1.0
        lowest = np.minimum(least[first], least[second])
        least[first], least[:, first] = lowest, lowest
        alive[second] = False
        members[first].extend(members.pop(second))
    groups = [sorted(indexes) for indexes in members.values()]
    return sorted(groups, key=lambda indexes: (-len(indexes), indexes[0]))
