"""The same help in three languages: agreed terms, and the facts a translation must keep.

``knowledge/terms.yaml`` names each term members meet (the help desk, the Registry Director, a profile...)
with its Spanish and Chinese rendering and the variants no text may use. A translated article must keep
every fact of its English version: phone numbers, e-mail addresses, web addresses, numbers (days, weeks,
hours, megabytes) and the interface labels the English shows in bold ("**Forgot Password**"); it may add,
never drop. A catalog entry keeps its placeholders and numbers. ``registry-bot kb check`` runs all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from babel.messages.pofile import read_po

from bot.config import LANGUAGES

SOURCE_LANGUAGE = "en"
_PHONE = re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9.-]+(?:/[^\s<>()\[\]\"'，。；）、]*)?")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9.,/-])\d+(?:[.,]\d+)?(?![A-Za-z0-9])")  # Chinese may touch it
_LIST_MARKER = re.compile(r"^\s*\d+\.\s", re.M)
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\{\s*(\w+)\s*\}\}|\{(\w+)\}")
# small words a Title Case interface label may hold in lower case ("Change of Hours", "Sign in")
_CONNECTORS = frozenset("a an and at by for in into of on or the to my your with".split())
_MAX_LABEL_WORDS = 6


@dataclass(frozen=True, slots=True)
class Term:
    """A term in every language, and the variants each language must not use for it."""

    en: str
    renderings: dict[str, str]
    avoid: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Facts:
    """What a text states that a translation must state too."""

    phones: frozenset[str]
    emails: frozenset[str]
    urls: frozenset[str]
    numbers: frozenset[str]
    labels: frozenset[str]


def load_terms(path: Path) -> list[Term]:
    """The terminology file: a list of ``{en, es, zh_Hans, avoid: {lang: [variants]}}``."""
    raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    terms = []
    for entry in raw:
        avoid = {lang: tuple(variants) for lang, variants in (entry.get("avoid") or {}).items()}
        renderings = {lang: entry[lang] for lang in LANGUAGES if lang in entry}
        terms.append(Term(entry["en"], renderings, avoid))
    return terms


def facts(text: str) -> Facts:
    """The phone numbers, e-mail addresses, web addresses, numbers and bold interface labels of ``text``."""
    phones = {re.sub(r"\D", "", found)[-10:] for found in _PHONE.findall(text)}
    emails = {found.lower() for found in _EMAIL.findall(text)}
    urls = {_url(found) for found in _URL.findall(text)}
    labels = {label for found in _BOLD.findall(text) if (label := _label(found))}
    rest = _LIST_MARKER.sub(" ", text)
    for pattern in (_URL, _EMAIL, _PHONE):
        rest = pattern.sub(" ", rest)
    numbers = {found.replace(",", ".") for found in _NUMBER.findall(rest)}
    return Facts(frozenset(phones), frozenset(emails), frozenset(urls), frozenset(numbers), frozenset(labels))


def _url(found: str) -> str:
    address = found.rstrip(".,;:!?").lower()
    address = address if "://" in address else "https://" + address
    parts = urlsplit(address)
    host = parts.netloc.removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}"


def _label(bold: str) -> str | None:
    """The text of a bold span when it is an interface label (a button, a menu, a field), else None."""
    label = bold.strip().strip('"“”')
    words = label.split()
    if not words or len(words) > _MAX_LABEL_WORDS or label[-1] in ".?!:;,)" or any(c in label for c in "@,"):
        return None
    if _URL.fullmatch(label) or any(char.isdigit() for char in label):
        return None
    titled = all(word[0].isupper() or word.lower() in _CONNECTORS for word in words)
    return label if titled and words[0][0].isupper() and label.isascii() else None


def missing(source: Facts, translation: str) -> Iterator[str]:
    """What of ``source`` the translated text leaves out, each named for a person to fix."""
    found = facts(translation)
    plain = translation.casefold()
    for phone in sorted(source.phones - found.phones):
        yield f"the phone number {phone[:3]}-{phone[3:6]}-{phone[6:]}"
    for email in sorted(source.emails - found.emails):
        yield f"the e-mail address {email}"
    for url in sorted(source.urls - found.urls):
        yield f"the web address {url}"
    for number in sorted(source.numbers - found.numbers):
        yield f"the number {number}"
    for label in sorted(source.labels):
        if label.casefold() not in plain:
            yield f'the label "{label}"'


def avoided(text: str, lang: str, terms: Iterable[Term]) -> Iterator[str]:
    """The variants ``text`` uses that the terminology file rules out in ``lang``."""
    for term in terms:
        for variant in term.avoid.get(lang, ()):
            if variant in text:
                rendering = term.renderings.get(lang, term.en)
                yield f'"{variant}" for "{term.en}" (say "{rendering}")'


# -- what kb check runs --------------------------------------------------------------------------------------


def check_articles(root: Path, terms: list[Term]) -> list[str]:
    """Facts kept and terms used in every translated article under ``root`` (knowledge/<registry>/<lang>)."""
    from bot.knowledge import KnowledgeError, parse_article

    problems: list[str] = []
    for english_path in sorted(root.glob(f"*/{SOURCE_LANGUAGE}/*.md")):
        registry = english_path.parent.parent.name
        try:
            english = parse_article(english_path, registry=registry, lang=SOURCE_LANGUAGE)
        except KnowledgeError:
            continue  # reported by the knowledge check
        source = facts(english.body)
        english_host = urlsplit(english.source).netloc
        for lang in LANGUAGES:
            path = root / registry / lang / english_path.name
            if not path.is_file():
                continue
            try:
                article = parse_article(path, registry=registry, lang=lang)
            except KnowledgeError:
                continue
            text = f"{article.title}\n{article.body}"
            problems += [f"{path}: uses {found}" for found in avoided(text, lang, terms)]
            if lang == SOURCE_LANGUAGE:
                continue
            dropped = missing(source, article.body)
            problems += [f"{path}: drops {fact} of the English version" for fact in dropped]
            if urlsplit(article.source).netloc != english_host:
                problems.append(f"{path}: its source is on another host than the English version's")
    return problems


def check_catalogs(locales: Path, terms: list[Term]) -> list[str]:
    """Placeholders and numbers kept, and terms used, in every translated catalog entry."""
    problems: list[str] = []
    for lang in LANGUAGES:
        path = locales / lang / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        for message in catalog:
            if not message.id or not isinstance(message.id, str) or not isinstance(message.string, str):
                continue
            where = f"{path}: {message.id[:60]!r}"
            problems += [f"{where} uses {found}" for found in avoided(message.string, lang, terms)]
            if lang == SOURCE_LANGUAGE or not message.string:
                continue
            if _placeholders(message.id) != _placeholders(message.string):
                problems.append(f"{where} does not keep the placeholders {sorted(_placeholders(message.id))}")
            dropped = facts(message.id).numbers - facts(message.string).numbers
            if dropped:
                problems.append(f"{where} drops the numbers {sorted(dropped)}")
    return problems


def check_templates(templates: Path, terms: list[Term]) -> list[str]:
    """Terms ruled out in English, in the templates' own (English) words."""
    problems: list[str] = []
    for path in sorted(templates.rglob("*.j2")):
        text = path.read_text(encoding="utf-8")
        problems += [f"{path}: uses {found}" for found in avoided(text, SOURCE_LANGUAGE, terms)]
    return problems


def _placeholders(text: str) -> set[str]:
    return {a or b or c for a, b, c in _PLACEHOLDER.findall(text)}


def check(content_dir: Path) -> list[str]:
    """Every terminology and parity problem of the articles, the catalogs and the templates."""
    terms = load_terms(content_dir / "knowledge" / "terms.yaml")
    return [
        *check_articles(content_dir / "knowledge", terms),
        *check_catalogs(content_dir / "locales", terms),
        *check_templates(Path(__file__).resolve().parent / "templates", terms),
    ]
