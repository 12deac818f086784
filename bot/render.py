"""Every member-facing text is a Jinja2 template rendered with the gettext catalog of its language."""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from bot import i18n
from bot.config import Profile

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@pass_context
def _datetime(context: Context, moment: datetime) -> str:
    return i18n.fmt_datetime(moment, context["lang"], context["tz"])


@pass_context
def _date(context: Context, moment: datetime) -> str:
    return i18n.fmt_date(moment, context["lang"], context["tz"])


@pass_context
def _day(context: Context, day: date) -> str:
    return i18n.fmt_day(day, context["lang"])


@pass_context
def _time(context: Context, moment: datetime) -> str:
    return i18n.fmt_time(moment, context["lang"], context["tz"])


@functools.cache
def environment(lang: str) -> Environment:
    """One cached Jinja environment per language, with that language's catalog installed."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        extensions=["jinja2.ext.i18n"],
        autoescape=False,  # replies are plain text; each channel escapes for its own format
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        auto_reload=False,  # templates ship with the package; checking the disk on every reply costs time
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(datetime=_datetime, date=_date, time=_time, day=_day)
    return env


def render(name: str, lang: str, /, *, tz: str = "UTC", **context: Any) -> str:
    """Render ``templates/<name>.j2`` in ``lang``; whitespace at both ends is trimmed."""
    template = environment(lang).get_template(f"{name}.j2")
    return template.render(lang=lang, tz=tz, **context).strip()


def render_for(profile: Profile, name: str, lang: str, /, **context: Any) -> str:
    """``render`` for one registry: its time zone, the profile and its name in ``lang`` at hand."""
    return render(
        name, lang, tz=profile.timezone, profile=profile, registry_name=profile.display_name(lang), **context
    )
