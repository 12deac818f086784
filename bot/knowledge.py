"""Support articles: loading ``knowledge/<registry>/<lang>/<topic>.md`` and checking them.

Which article answers a message is decided by the topic model (``bot.understanding``), trained on the
articles' titles, example questions and keywords; this module only loads and checks the content.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz

from bot import text
from bot.config import LANGUAGES

logger = logging.getLogger(__name__)

KINDS = ("article", "flow", "action")
# libyaml's safe loader when PyYAML was built with it (a tenth of the time of the pure-Python one)
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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


class KnowledgeError(ValueError):
    """A knowledge file that cannot be loaded."""


def parse_article(path: Path, *, registry: str, lang: str) -> Article:
    """Parse one article file; raises ``KnowledgeError`` naming the file and the problem."""
    raw = path.read_text(encoding="utf-8")
    found = _FRONT_MATTER.match(raw)
    if not found:
        raise KnowledgeError(f"{path}: no front matter between --- lines")
    try:
        meta: Any = yaml.load(found.group(1), Loader=SAFE_LOADER)
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


_Marker = tuple[tuple[str, ...], tuple[str, ...]]


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


def excluded_by(article: Article, query: str) -> str | None:
    """The not_about entry of ``article`` that ``query`` falls under, or None."""
    words = text.words(query)
    joined = "".join(words)
    for entry in article.not_about:
        if _has_marker(_marker(entry), words, joined):
            return entry
    return None


class KnowledgeBase:
    """All articles of all registries."""

    def __init__(self, articles: Iterable[Article]) -> None:
        self.articles: dict[tuple[str, str, str], Article] = {}
        for article in articles:
            self.articles[(article.registry, article.lang, article.id)] = article
        # per registry and topic, the not_about markers of every language
        self._markers: dict[tuple[str, str], list[_Marker]] = defaultdict(list)
        for (registry, _, topic), article in sorted(self.articles.items()):
            self._markers[(registry, topic)].extend(_marker(entry) for entry in article.not_about)

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

    def excludes(self, registry: str, topic: str, words: Sequence[str]) -> bool:
        """Whether a message of ``words`` falls under one of the topic's not_about entries (in any
        language): it is about something that only looks alike ("gmail password")."""
        markers = self._markers.get((registry, topic))
        if not markers:
            return False
        listed, joined = list(words), "".join(words)
        return any(_has_marker(marker, listed, joined) for marker in markers)

    def language_votes(self, query: str) -> dict[str, int]:
        """How many of the query's words the articles use only in one language (a hint for detection)."""
        votes = dict.fromkeys(LANGUAGES, 0)
        vocabulary = _language_vocabulary(self)
        for word in text.words(query):
            langs = vocabulary.get(word)
            if langs and len(langs) == 1:
                votes[next(iter(langs))] += 1
        return votes


@functools.cache
def load_knowledge(root: Path) -> KnowledgeBase:
    """The knowledge base under ``root``, loaded and indexed once per process."""
    return KnowledgeBase.load(root)


@functools.cache
def _language_vocabulary(kb: KnowledgeBase) -> dict[str, frozenset[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for (_, lang, _), article in kb.articles.items():
        for phrase in (article.title, *article.questions, *article.keywords):
            for word in text.words(phrase):
                if not text.is_cjk(word) and not word.isdigit():
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
