"""Every member-facing string is translated, keeps its placeholders, and every template renders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.config import LANGUAGES, PROJECT_DIR, Settings, load_profile
from bot.render import TEMPLATES_DIR, render

PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_entry_is_translated(lang: str) -> None:
    path = PROJECT_DIR / "locales" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    template = read_po((PROJECT_DIR / "locales" / "messages.pot").open("rb"))
    assert {m.id for m in catalog if m.id} == {m.id for m in template if m.id}, "run scripts/catalogs.py"
    for message in catalog:
        if not message.id:
            continue
        assert message.string, f"{lang}: untranslated {message.id!r}"
        assert "fuzzy" not in message.flags, f"{lang}: fuzzy {message.id!r}"
        assert sorted(PLACEHOLDER.findall(str(message.id))) == sorted(
            PLACEHOLDER.findall(str(message.string))
        )


TEMPLATE_CONTEXT = {
    "flow_title": "Something",
    "notice": "Notice text",
    "is_open": False,
    "hours_known": True,
    "next_opening": datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
    "offer": "handoff",
    "state": None,
}


def templates() -> list[str]:
    return sorted(str(p.relative_to(TEMPLATES_DIR).with_suffix("")) for p in TEMPLATES_DIR.rglob("*.j2"))


@pytest.mark.parametrize("name", templates())
def test_every_template_renders_in_every_language(name: str) -> None:
    profile = load_profile("ca", Settings())

    class Article:
        title, body = "Title", "Body"

    rendered = {
        lang: render(
            name,
            lang,
            tz=profile.timezone,
            profile=profile,
            registry_name=profile.display_name(lang),
            article=Article(),
            **TEMPLATE_CONTEXT,
        )
        for lang in LANGUAGES
    }
    assert all(rendered.values())
    if name != "answer" and name != "notice":
        assert rendered["es"] != rendered["en"] and rendered["zh_Hans"] != rendered["en"], name


def test_dates_are_formatted_for_the_member(tmp_path: Path) -> None:
    profile = load_profile("ca", Settings())
    moment = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    kwargs = {"tz": profile.timezone, "profile": profile, "is_open": False, "next_opening": moment}
    assert "Monday, November 30 at 8:00 AM Pacific Time" in render("hours", "en", **kwargs)
    assert "lunes, 30 de noviembre" in render("hours", "es", **kwargs)
    assert "11月30日星期一" in render("hours", "zh_Hans", **kwargs)
