"""Languages: tag resolution, gettext catalogs (read straight from .po files), Babel formatting."""

from __future__ import annotations

import functools
import logging
import re
from datetime import date, datetime, time
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_interval,
    format_time,
    get_day_names,
    get_timezone_name,
)
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from bot.config import LANGUAGES, PROJECT_DIR

logger = logging.getLogger(__name__)

LOCALES_DIR = PROJECT_DIR / "locales"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where the member's language is known."""
    return message


def resolve_locale(tag: str | None) -> str | None:
    """Map a platform language tag to one of our languages, or None when we do not speak it.

    Babel's negotiation does not map ``zh-CN``, ``zh-SG`` or ``zh-Hans-CN`` to ``zh_Hans``; every Chinese
    tag (Traditional ones too) resolves to Simplified Chinese, the only Chinese we answer in.
    """
    if not tag:
        return None
    cleaned = tag.strip().replace("-", "_")
    if cleaned in LANGUAGES:
        return cleaned
    try:
        locale = Locale.parse(cleaned)
    except (ValueError, UnknownLocaleError):
        language = cleaned.split("_", 1)[0].lower()
    else:
        language = locale.language
    if language == "zh":
        return "zh_Hans"
    return language if language in LANGUAGES else None


def babel_locale(lang: str) -> Locale:
    return Locale.parse(lang)


@functools.cache
def translations(lang: str, locales_dir: Path = LOCALES_DIR) -> NullTranslations:
    """The catalog of ``lang``, compiled in memory from its .po file (no separate compile step)."""
    po_path = locales_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.is_file():
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def gettext(lang: str, message: str) -> str:
    return translations(lang).gettext(message)


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


@functools.cache
def _day_pattern(lang: str) -> str:
    """The locale's full date pattern without the year ("EEEE, MMMM d"; "EEEE, d 'de' MMMM"; "M月d日EEEE")."""
    pattern = babel_locale(lang).date_formats["full"].pattern
    return re.sub(r",?\s*(?:'de'\s*)?y+年?", "", pattern).strip(" ,")


def _plain(text: str) -> str:
    # CLDR puts a narrow no-break space before AM/PM; many terminals and chat fonts show it as a box
    return text.replace("\u202f", " ")


def fmt_datetime(moment: datetime, lang: str, timezone: str) -> str:
    """Day and time in the member's locale and the registry's zone.

    For example "Monday, November 30 at 8:00 AM Pacific Time" or "lunes, 30 de noviembre a las 8:00".
    """
    tz = ZoneInfo(timezone)
    locale = babel_locale(lang)
    local_moment = moment.astimezone(tz)
    day = format_date(local_moment, format=_day_pattern(lang), locale=locale)
    clock = _plain(format_time(local_moment, format="short", locale=locale))
    zone = get_timezone_name(local_moment, width="long", zone_variant="generic", locale=locale)
    return gettext(lang, N_("{day} at {time} {zone}")).format(day=day, time=clock, zone=zone)


def fmt_day(day: date, lang: str) -> str:
    """A day without its year, in the member's locale ("Friday, December 25", "viernes, 25 de diciembre")."""
    return format_date(day, format=_day_pattern(lang), locale=babel_locale(lang))


def fmt_date(moment: datetime, lang: str, timezone: str) -> str:
    return format_date(moment.astimezone(ZoneInfo(timezone)), format="long", locale=babel_locale(lang))


def fmt_time(moment: datetime, lang: str, timezone: str) -> str:
    return _plain(format_time(moment, format="short", tzinfo=ZoneInfo(timezone), locale=babel_locale(lang)))


def fmt_timestamp(moment: datetime, lang: str, timezone: str) -> str:
    return _plain(
        format_datetime(moment, format="medium", tzinfo=ZoneInfo(timezone), locale=babel_locale(lang))
    )


def fmt_weekly_hours(weekly: list[tuple[int, time, time]], lang: str, timezone: str) -> list[str]:
    """Weekly hours as lines, consecutive days with the same hours together: "Monday to Friday: 8:00 AM –
    5:00 PM" (``weekly`` holds weekday numbers, Monday 0, with opening and closing times)."""
    locale = babel_locale(lang)
    names = get_day_names("wide", locale=locale)
    groups: list[list[tuple[int, time, time]]] = []
    for day in sorted(weekly):
        last = groups[-1][-1] if groups else None
        if last is not None and last[0] == day[0] - 1 and last[1:] == day[1:]:
            groups[-1].append(day)
        else:
            groups.append([day])
    lines = []
    for group in groups:
        first, last = names[group[0][0]], names[group[-1][0]]
        days = (
            first
            if len(group) == 1
            else gettext(lang, N_("{first} to {last}")).format(first=first, last=last)
        )
        span = _plain(format_interval(group[0][1], group[0][2], "hm", locale=locale))
        lines.append(gettext(lang, N_("{days}: {hours}")).format(days=days, hours=span))
    return lines


def zone_name(timezone: str, lang: str, moment: datetime) -> str:
    """The time zone's generic name in the member's language ("Pacific Time", "hora del Pacífico")."""
    return get_timezone_name(
        moment.astimezone(ZoneInfo(timezone)), width="long", zone_variant="generic", locale=babel_locale(lang)
    )
