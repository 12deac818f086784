"""Every member-facing string is translated, keeps its placeholders, and every template renders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

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
    with (PROJECT_DIR / "locales" / "messages.pot").open("rb") as handle:
        template = read_po(handle)
    assert {m.id for m in catalog if m.id} == {m.id for m in template if m.id}, "run scripts/catalogs.py"
    for message in catalog:
        if not message.id:
            continue
        assert message.string, f"{lang}: untranslated {message.id!r}"
        assert "fuzzy" not in message.flags, f"{lang}: fuzzy {message.id!r}"
        # a plural's forms may number differently (Chinese has one), but none may drop a placeholder
        assert set(PLACEHOLDER.findall(str(message.id))) == set(PLACEHOLDER.findall(str(message.string))), (
            f"{lang}: placeholders differ in {message.id!r}"
        )


MOMENT = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
MEMBER = SimpleNamespace(first_name="Ana", registry_id="10000001", email="ana@example.org")
SPONSOR = SimpleNamespace(name="Bay Area Training", email="train@example.org", phone="(510) 555-0100")
AUDIT = SimpleNamespace(
    id=42,
    reference="AUD-2026-00042",
    status="submitted",
    description="Please review my child development units from 2019.",
    submitted_at=MOMENT,
    decided_at=None,
    due_at=MOMENT,
    decision_note="",
    category="education",
)
APPEAL = SimpleNamespace(reference="APL-2026-00007", status="submitted", submitted_at=MOMENT, due_at=MOMENT)
# Every variable any template uses, with realistic values, so each one renders in every language.
TEMPLATE_CONTEXT = {
    "flow_title": "Something",
    "notice": "Notice text",
    "is_open": False,
    "hours_known": True,
    "next_opening": MOMENT,
    "offer": "handoff",
    "state": SimpleNamespace(
        slots={"description": "A description", "reason": "A reason", "coursework": True}
    ),
    "member": MEMBER,
    "first_name": "Ana",
    "code": "123456",
    "minutes": 10,
    "audit": AUDIT,
    "appeal": APPEAL,
    "audits": [AUDIT],
    "appeals": [APPEAL],
    "overturned": {42: "APL-2026-00007"},
    "embedded": True,
    "visitor": "visitor.signature",
    "category": "Education",
    "documents": ["syllabus.pdf"],
    "names": ["syllabus.pdf"],
    "name": "syllabus.pdf",
    "limit": 10,
    "left": 2,
    "title": "Positive Guidance",
    "when": "Monday, November 30 at 8:00 AM Pacific Time",
    "sponsor": SPONSOR,
    "location": "Online",
    "closed_on": "Monday, November 23",
    "days": 7,
    "text": "We fixed your profile.",
    "reference": "AUD-2026-00042",
    "note": "The transcript shows 9 units, not 12.",
    "message": "Your request was approved.",
    "errands": ["Withdraw from a training"],
    "weekly": ["Monday to Friday: 8:00 AM – 5:00 PM"],
    "zone": "Pacific Time",
    "closes_at": MOMENT,
    "next_closure": MOMENT.date(),
    "until": MOMENT,
    "wrong": True,
    "offered": True,
    "asking": True,
}


def templates() -> list[str]:
    return sorted(
        str(p.relative_to(TEMPLATES_DIR).with_suffix(""))
        for p in TEMPLATES_DIR.rglob("*.j2")
        if not p.name.startswith("_")  # macros, imported by other templates
    )


# Templates that hold no words of their own (a data line, or the article itself).
NO_WORDS = {"answer", "notice", "flows/appeal/choice", "flows/withdraw-training/choice"}


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
    if name not in NO_WORDS:
        assert rendered["es"] != rendered["en"] and rendered["zh_Hans"] != rendered["en"], name


def test_dates_are_formatted_for_the_member(tmp_path: Path) -> None:
    profile = load_profile("ca", Settings())
    moment = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    kwargs = {
        "tz": profile.timezone,
        "profile": profile,
        "is_open": False,
        "next_opening": moment,
        "weekly": [],
        "zone": "",
        "next_closure": None,
    }
    assert "Monday, November 30 at 8:00 AM Pacific Time" in render("hours", "en", **kwargs)
    assert "lunes, 30 de noviembre" in render("hours", "es", **kwargs)
    assert "11月30日星期一" in render("hours", "zh_Hans", **kwargs)
