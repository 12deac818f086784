"""Support hours of a registry profile: weekly hours, state holidays, whether staff are in, next opening."""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holiday_calendars

from bot.config import WEEKDAYS, Profile

logger = logging.getLogger(__name__)


class SupportHours:
    """The help desk's hours; ``known`` is False when the registry publishes none."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.tz = ZoneInfo(profile.timezone)
        self.weekly = profile.hours or {}
        self.extra = {date.fromisoformat(day) for day in profile.holidays.extra}
        self.removed = {date.fromisoformat(day) for day in profile.holidays.removed}

    @property
    def known(self) -> bool:
        return bool(self.weekly)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a handful of years per profile, lives as long as it
    def _calendar(self, year: int) -> holiday_calendars.HolidayBase:
        settings = self.profile.holidays
        return holiday_calendars.country_holidays(settings.country, subdiv=settings.subdivision, years=year)

    def holiday(self, day: date) -> str | None:
        """The holiday's name when the help desk is closed for one on ``day``."""
        if day in self.removed:
            return None
        if day in self.extra:
            return "holiday"
        name = self._calendar(day.year).get(day)
        return str(name) if name else None

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        hours = self.weekly.get(WEEKDAYS[day.weekday()])
        if hours is None or self.holiday(day):
            return None
        opens, closes = hours
        return datetime.combine(day, opens, tzinfo=self.tz), datetime.combine(day, closes, tzinfo=self.tz)

    def is_open(self, at: datetime) -> bool:
        """Whether staff are in at ``at`` (False when hours are unknown)."""
        local = at.astimezone(self.tz)
        window = self._window(local.date())
        return window is not None and window[0] <= local < window[1]

    def weekly_hours(self) -> list[tuple[int, time, time]]:
        """(weekday number, opening, closing) for each day the help desk works, Monday first."""
        return [(WEEKDAYS.index(day), *hours) for day, hours in self.weekly.items()]

    def closes_at(self, at: datetime) -> datetime | None:
        """When the help desk closes today, if it is open at ``at``."""
        local = at.astimezone(self.tz)
        window = self._window(local.date())
        return window[1] if window is not None and window[0] <= local < window[1] else None

    def next_holiday(self, at: datetime, *, within_days: int = 60) -> date | None:
        """The next working day on which the help desk is closed for a holiday, within ``within_days``."""
        today = at.astimezone(self.tz).date()
        for offset in range(within_days):
            day = today + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] in self.weekly and self.holiday(day):
                return day
        return None

    def next_opening(self, at: datetime) -> datetime | None:
        """When the help desk next opens after ``at`` (None when hours are unknown)."""
        if not self.known:
            return None
        local = at.astimezone(self.tz)
        for offset in range(0, 30):
            window = self._window(local.date() + timedelta(days=offset))
            if window is not None and window[0] > local:
                return window[0]
        return None
