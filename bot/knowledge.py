"""Support articles: loading ``knowledge/<registry>/<lang>/<topic>.md``, checking them, and searching them.

Search is lexical and fuzzy: every title, question variant and keyword of every language of a registry is
indexed as a phrase of weighted terms (stemmed words; Chinese characters and character pairs). A query's
words are mapped onto the vocabulary (exactly, by stem, or by rapidfuzz for typos), and each topic is scored
by how much of the query it explains and how closely the query resembles one of its phrases. Words the
knowledge base has never seen count against every topic, so a question about something else scores low.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz, process

from bot import text
from bot.config import LANGUAGES

logger = logging.getLogger(__name__)

KINDS = ("article", "flow", "action")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.S)
_REQUIRED: dict[str, type] = {
    "id": str,
    "kind": str,
    "title": str,
    "questions": list,
    "keywords": list,
    "source": str,
    "related": list,
}


@dataclass(frozen=True, slots=True)
class Article:
    """One support article in one language."""

    id: str
    registry: str
    lang: str
    kind: str
    title: str
    body: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    source: str
    related: tuple[str, ...]
    flow: str | None
    path: Path
    not_about: tuple[str, ...] = ()  # subjects that look alike but belong elsewhere ("gmail password")


@dataclass(frozen=True, slots=True)
class Match:
    """A topic, how well it fits (0 to 1), and how much evidence stands behind that (summed word weights)."""

    topic: str
    score: float
    evidence: float = 0.0
    coverage: float = 0.0  # the share of the question's weight that the evidence makes up


class KnowledgeError(ValueError):
    """A knowledge file that cannot be loaded."""


def parse_article(path: Path, *, registry: str, lang: str) -> Article:
    """Parse one article file; raises ``KnowledgeError`` naming the file and the problem."""
    raw = path.read_text(encoding="utf-8")
    found = _FRONT_MATTER.match(raw)
    if not found:
        raise KnowledgeError(f"{path}: no front matter between --- lines")
    try:
        meta: Any = yaml.safe_load(found.group(1))
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise KnowledgeError(f"{path}: front matter is not a mapping")
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise KnowledgeError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    not_about = meta.get("not_about", [])
    if not isinstance(not_about, list):
        raise KnowledgeError(f"{path}: field 'not_about' is not a list")
    for key in ("questions", "keywords", "related", "not_about"):
        if not all(isinstance(item, str) and item.strip() for item in meta.get(key, [])):
            raise KnowledgeError(f"{path}: every item of {key!r} must be non-empty text")
    if meta["kind"] not in KINDS:
        raise KnowledgeError(f"{path}: kind {meta['kind']!r} is not one of {', '.join(KINDS)}")
    flow = meta.get("flow", meta["id"] if meta["kind"] == "flow" else None)
    if meta["kind"] != "article" and not isinstance(flow, str):
        raise KnowledgeError(f"{path}: a {meta['kind']} needs a 'flow'")
    body = found.group(2).strip()
    if not body:
        raise KnowledgeError(f"{path}: the article has no body")
    return Article(
        id=meta["id"],
        registry=registry,
        lang=lang,
        kind=meta["kind"],
        title=meta["title"].strip(),
        body=body,
        questions=tuple(q.strip() for q in meta["questions"]),
        keywords=tuple(k.strip() for k in meta["keywords"]),
        source=meta["source"].strip(),
        related=tuple(meta["related"]),
        flow=flow if isinstance(flow, str) else None,
        path=path,
        not_about=tuple(item.strip() for item in not_about),
    )


# --- the index -----------------------------------------------------------------------------------------


@dataclass
class _Phrase:
    topic: str
    terms: dict[str, float]
    total: float


@dataclass
class _Index:
    topics: list[str]
    phrases: list[_Phrase] = field(default_factory=list)
    postings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    topic_terms: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    term_topics: dict[str, list[str]] = field(default_factory=dict)  # topic_terms inverted, in topic order
    # postings with the phrase's weight of the term: term -> [(phrase number, weight)]
    weighted_postings: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    phrase_topic: list[str] = field(default_factory=list)  # by phrase number, for the search loop
    phrase_total: list[float] = field(default_factory=list)
    marker_pieces: tuple[str, ...] = ()  # the Latin words of not_about markers, five letters or more
    idf: dict[str, float] = field(default_factory=dict)
    surface: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    surface_words: list[str] = field(default_factory=list)
    unknown_weight: float = 2.0
    # per topic, the not_about entries as (Latin words, Chinese runs): a query having all of one's pieces
    # is about something else, and the topic is left out
    excluded: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = field(
        default_factory=lambda: defaultdict(list)
    )


CJK_CHAR_FACTOR = 0.5
PHRASE_FLOOR = 0.7
UNKNOWN_FACTOR = 1.5  # a word no article uses weighs like a rare word: it signals another subject
CONTEXT_FACTOR = 0.3  # an unknown everyday word of a chatty message ("my daughter") weighs less


def _marker(entry: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A not_about entry as the Latin words and Chinese runs a query must all contain."""
    pieces = text.words(entry)
    latin = tuple(word for word in pieces if not text.is_cjk(word) and word not in text.STOPWORDS)
    return latin, tuple(word for word in pieces if text.is_cjk(word))


def _has_marker(marker: tuple[tuple[str, ...], tuple[str, ...]], words: list[str], joined: str) -> bool:
    latin, cjk = marker
    if not latin and not cjk:
        return False
    for piece in latin:
        if piece in words:
            continue
        if len(piece) >= 5 and any(
            fuzz.ratio(piece, word) >= 88 for word in words if abs(len(word) - len(piece)) <= 2
        ):
            continue
        return False
    return all(piece in joined for piece in cjk)


def _left_out(index: _Index, words: list[str], candidates: set[str]) -> set[str]:
    """The ``candidates`` whose not_about markers the query has (what ``_has_marker`` says, computed once).

    A Latin marker word is in the query when a query word is that word, or (five letters or more) close
    to it by rapidfuzz; which marker words each query word is close to is remembered across queries.
    """
    excluded = index.excluded
    if not any(topic in excluded for topic in candidates):
        return set()
    present = set(words)
    for word in words:
        present |= _near_pieces(id(index), word)
    joined = "".join(words)
    out = set()
    for topic in candidates:
        for latin, cjk in excluded.get(topic, ()):
            if (latin or cjk) and present.issuperset(latin) and all(p in joined for p in cjk):
                out.add(topic)
                break
    return out


@functools.lru_cache(maxsize=65536)
def _near_pieces(index_id: int, word: str) -> frozenset[str]:
    """The marker words of five letters or more that ``word`` is a close spelling of."""
    return frozenset(
        piece
        for piece in _INDEXES[index_id].marker_pieces
        if abs(len(word) - len(piece)) <= 2 and fuzz.ratio(piece, word) >= 88
    )


def excluded_by(article: Article, query: str) -> str | None:
    """The not_about entry of ``article`` that ``query`` falls under, or None."""
    words = text.words(query)
    joined = "".join(words)
    for entry in article.not_about:
        if _has_marker(_marker(entry), words, joined):
            return entry
    return None


def _phrase_terms(phrase: str, lang: str) -> list[tuple[str, str]]:
    """(surface word, term) pairs of a phrase written in ``lang``."""
    stem_lang = lang if lang in ("en", "es") else "en"
    out: list[tuple[str, str]] = []
    for word in text.words(phrase):
        if text.is_cjk(word):
            out.extend((term, term) for term in text.cjk_terms(word))
        elif word in text.NEGATIONS:
            out.append((word, text.NEGATION_TERM))
        elif word in text.WHY_WORDS:
            out.append((word, text.WHY_TERM))
        elif word not in text.STOPWORDS and len(word) > 1 and not word.isdigit():
            out.append((word, f"{stem_lang}:{text.stem(word, stem_lang)}"))
    if out and text.asks_what(phrase):
        out.append(("~what", text.WHAT_TERM))
    return out


class KnowledgeBase:
    """All articles of all registries, with one search index per registry."""

    def __init__(self, articles: Iterable[Article]) -> None:
        self.articles: dict[tuple[str, str, str], Article] = {}
        for article in articles:
            self.articles[(article.registry, article.lang, article.id)] = article
        self._indexes: dict[str, _Index] = {}
        for registry in self.registries():
            self._indexes[registry] = self._build(registry)

    @classmethod
    def load(cls, root: Path) -> KnowledgeBase:
        """Load every article under ``root`` (``knowledge/``); raises ``KnowledgeError`` on a bad file."""
        articles = []
        for path in sorted(root.glob("*/*/*.md")):
            registry, lang = path.parent.parent.name, path.parent.name
            articles.append(parse_article(path, registry=registry, lang=lang))
        return cls(articles)

    def registries(self) -> list[str]:
        return sorted({registry for registry, _, _ in self.articles})

    def topics(self, registry: str) -> list[str]:
        return sorted({topic for reg, _, topic in self.articles if reg == registry})

    def article(self, registry: str, topic: str, lang: str) -> Article | None:
        return self.articles.get((registry, lang, topic)) or self.articles.get((registry, "en", topic))

    # -- indexing ------------------------------------------------------------------------------------

    def _build(self, registry: str) -> _Index:
        index = _Index(topics=self.topics(registry))
        raw: list[tuple[str, list[tuple[str, str]]]] = []
        for (reg, lang, topic), article in sorted(self.articles.items()):
            if reg != registry:
                continue
            index.excluded[topic].extend(_marker(entry) for entry in article.not_about)
            for phrase in (article.title, *article.questions, *article.keywords):
                pairs = _phrase_terms(phrase, lang)
                if pairs:
                    raw.append((topic, pairs))
                for surface, term in pairs:
                    index.topic_terms[topic].add(term)
                    if not text.is_cjk(surface) and not surface.startswith("~"):
                        index.surface[surface].add(term)
        n_topics = len(index.topics)
        document_frequency: dict[str, int] = defaultdict(int)
        for terms in index.topic_terms.values():
            for term in terms:
                document_frequency[term] += 1
        for term, df in document_frequency.items():
            weight = math.log((n_topics + 1) / (df + 0.5))
            index.idf[term] = max(weight, 0.05) * (
                CJK_CHAR_FACTOR if len(term) == 1 and text.is_cjk(term) else 1
            )
        index.unknown_weight = UNKNOWN_FACTOR * math.log((n_topics + 1) / 2.5)
        # rare or common, these change what is asked
        for concept in (text.NEGATION_TERM, text.WHY_TERM, text.WHAT_TERM):
            if concept in index.idf:
                index.idf[concept] = max(index.idf[concept], 1.2)
        for topic, pairs in raw:
            # a phrase's own words count at least PHRASE_FLOOR, so a common word it has and the query
            # lacks still makes it a worse fit
            weights = {term: max(index.idf[term], PHRASE_FLOOR) for _, term in pairs}
            number = len(index.phrases)
            index.phrases.append(_Phrase(topic=topic, terms=weights, total=sum(weights.values())))
            for term in weights:
                index.postings[term].append(number)
        index.surface_words = sorted(index.surface)
        for topic in index.topics:
            for term in index.topic_terms[topic]:
                index.term_topics.setdefault(term, []).append(topic)
        for term, numbers in index.postings.items():
            index.weighted_postings[term] = [(n, index.phrases[n].terms[term]) for n in numbers]
        index.phrase_topic = [phrase.topic for phrase in index.phrases]
        index.phrase_total = [phrase.total for phrase in index.phrases]
        index.marker_pieces = tuple(
            sorted(
                {
                    piece
                    for marks in index.excluded.values()
                    for latin, _ in marks
                    for piece in latin
                    if len(piece) >= 5
                }
            )
        )
        _INDEXES[id(index)] = index
        return index

    # -- searching -----------------------------------------------------------------------------------

    def _query_terms(
        self, index: _Index, query: str, lang: str | None = None
    ) -> list[tuple[str | None, float, float]]:
        """(term or None when unknown, similarity, weight) for each meaningful piece of the query."""
        out: list[tuple[str | None, float, float]] = []
        for word in text.words(query):
            if text.is_cjk(word):
                for term in text.cjk_terms(word):
                    if term in index.idf:
                        out.append((term, 1.0, index.idf[term]))
                    else:
                        factor = CJK_CHAR_FACTOR if len(term) == 1 else 0.5
                        out.append((None, 0.0, index.unknown_weight * factor))
                continue
            if word in text.STOPWORDS or len(word) < 2 or word.isdigit():
                continue
            concept = (
                text.NEGATION_TERM
                if word in text.NEGATIONS
                else text.WHY_TERM
                if word in text.WHY_WORDS
                else None
            )
            if concept is not None:
                if concept in index.idf:
                    out.append((concept, 1.0, index.idf[concept]))
                continue
            found, similarity = _lookup(index, word, lang)
            weight = (
                index.idf[found]
                if found
                else index.unknown_weight * (CONTEXT_FACTOR if word in text.CONTEXT_WORDS else 1)
            )
            out.append((found, similarity, weight))
        if out and text.WHAT_TERM in index.idf and text.asks_what(query):
            out.append((text.WHAT_TERM, 1.0, index.idf[text.WHAT_TERM]))
        return out

    def search(
        self,
        query: str,
        registry: str,
        *,
        lang: str | None = None,
        limit: int = 5,
        markers_in: str | None = None,
    ) -> list[Match]:
        """Topics of ``registry`` ranked by how well they answer ``query`` (scores from 0 to 1).

        ``lang`` (the query's language, when known) decides between words spelled alike in two languages.
        ``markers_in`` is the text whose not_about markers leave topics out (default the query itself: a
        sentence of a message is checked against the whole message).
        """
        index = self._indexes.get(registry)
        if index is None:
            return []
        terms = self._query_terms(index, query, lang)
        query_total = sum(weight for _, _, weight in terms)
        if not query_total:
            return []
        # how much of the query each phrase explains, and how much of each phrase the query covers
        postings = index.weighted_postings
        explained: dict[int, float] = defaultdict(float)
        covered: dict[int, float] = defaultdict(float)
        topic_explained: dict[str, float] = defaultdict(float)
        seen: set[str] = set()
        for term, similarity, weight in terms:
            if term is None:
                continue
            amount = weight * similarity
            if term in seen:
                for number, _ in postings.get(term, ()):
                    explained[number] += amount
            else:
                seen.add(term)
                for number, phrase_weight in postings.get(term, ()):
                    explained[number] += amount
                    covered[number] += phrase_weight * similarity
            for topic in index.term_topics.get(term, ()):
                topic_explained[topic] += amount
        # each topic's best phrase, by the harmonic mean of the two coverages
        phrase_topic, phrase_total = index.phrase_topic, index.phrase_total
        best_phrase: dict[str, float] = {}
        for number, amount in explained.items():
            total = phrase_total[number]
            if not total or not amount:
                continue
            q_cover = amount / query_total
            if q_cover > 1.0:
                q_cover = 1.0
            p_cover = covered[number] / total
            if p_cover > 1.0:
                p_cover = 1.0
            if p_cover:
                f = 2 * q_cover * p_cover / (q_cover + p_cover)
                topic = phrase_topic[number]
                best = best_phrase.get(topic)
                if best is None or f > best:
                    best_phrase[topic] = f
        # then the topics whose not_about markers the query has are left out
        for topic in _left_out(index, text.words(markers_in or query), set(best_phrase)):
            del best_phrase[topic]
        # rank on the rounded score, then the topic id; only the returned matches are built
        ranked = sorted(
            (-round(0.7 * best + 0.3 * min(topic_explained[topic] / query_total, 1.0), 4), topic)
            for topic, best in best_phrase.items()
        )
        return [
            Match(topic, -score, round(topic_explained[topic], 3), topic_explained[topic] / query_total)
            for score, topic in ranked[:limit]
        ]

    def language_votes(self, query: str) -> dict[str, int]:
        """How many of the query's words the articles use only in one language (a hint for detection)."""
        votes = dict.fromkeys(LANGUAGES, 0)
        vocabulary = _language_vocabulary(self)
        for word in text.words(query):
            langs = vocabulary.get(word)
            if langs and len(langs) == 1:
                votes[next(iter(langs))] += 1
        return votes


def _pick(terms: set[str], order: tuple[str, str]) -> str:
    """Of the terms a word stands for in several languages, the one of the query's language."""
    for lang in order:
        for term in sorted(terms):
            if term.startswith(lang + ":"):
                return term
    return min(terms)


@functools.lru_cache(maxsize=65536)
def _lookup_cached(index_id: int, word: str, order: tuple[str, str]) -> tuple[str | None, float]:
    index = _INDEXES[index_id]
    terms = index.surface.get(word)
    if terms:
        return _pick(terms, order), 1.0
    for lang in order:
        term = f"{lang}:{text.stem(word, lang)}"
        if term in index.idf:
            return term, 1.0
    if len(word) >= 4:
        cutoff = 89 if len(word) < 6 else 86
        found = process.extractOne(word, index.surface_words, scorer=fuzz.ratio, score_cutoff=cutoff)
        if found:
            return _pick(index.surface[found[0]], order), found[1] / 100 * 0.9
    return None, 0.0


_INDEXES: dict[int, _Index] = {}


def _lookup(index: _Index, word: str, lang: str | None) -> tuple[str | None, float]:
    """Map a query word to a vocabulary term: as written, by stem, or by a close spelling."""
    _INDEXES[id(index)] = index
    order = ("es", "en") if lang == "es" else ("en", "es")
    return _lookup_cached(id(index), word, order)


@functools.cache
def _language_vocabulary(kb: KnowledgeBase) -> dict[str, frozenset[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for (_, lang, _), article in kb.articles.items():
        for phrase in (article.title, *article.questions, *article.keywords):
            for word in text.words(phrase):
                if not text.is_cjk(word):
                    seen[word].add(lang)
    return {word: frozenset(langs) for word, langs in seen.items()}


def check(root: Path, *, known_flows: Iterable[str], languages: Iterable[str] = LANGUAGES) -> list[str]:
    """Every problem of the knowledge base under ``root``; an empty list means it is sound."""
    problems: list[str] = []
    articles: list[Article] = []
    for path in sorted(root.glob("*/*/*.md")):
        registry, lang = path.parent.parent.name, path.parent.name
        if lang not in LANGUAGES:
            problems.append(f"{path}: unknown language folder {lang!r}")
            continue
        try:
            article = parse_article(path, registry=registry, lang=lang)
        except KnowledgeError as exc:
            problems.append(str(exc))
            continue
        if article.id != path.stem:
            problems.append(f"{path}: id {article.id!r} does not match the file name")
        if article.flow is not None and article.flow not in set(known_flows):
            problems.append(f"{path}: unknown flow {article.flow!r}")
        articles.append(article)
    by_registry: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for article in articles:
        by_registry[article.registry][article.id].add(article.lang)
    for registry, topics in sorted(by_registry.items()):
        for topic, langs in sorted(topics.items()):
            for lang in languages:
                if lang not in langs:
                    problems.append(f"knowledge/{registry}/{lang}/{topic}.md: missing translation")
    for article in articles:
        for entry in article.not_about:
            if not any(_marker(entry)):
                problems.append(f"{article.path}: not_about entry {entry!r} has no words to look for")
        own = [other for other in articles if (other.registry, other.id) == (article.registry, article.id)]
        for other in own:
            for phrase in (other.title, *other.questions, *other.keywords):
                hit = excluded_by(article, phrase)
                if hit is not None:
                    problems.append(
                        f"{article.path}: not_about entry {hit!r} would leave out the topic's own "
                        f"phrase {phrase!r} ({other.lang})"
                    )
        for related in article.related:
            if related not in by_registry[article.registry]:
                problems.append(
                    f"{article.path}: related topic {related!r} does not exist in {article.registry}"
                )
    return problems
