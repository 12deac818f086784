"""Support hours: the edges of the day and week, holidays, daylight-saving changes, unknown hours."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings, load_profile
from bot.hours import SupportHours

PACIFIC = ZoneInfo("America/Los_Angeles")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=PACIFIC)


@pytest.fixture
def ca() -> SupportHours:
    return SupportHours(load_profile("ca", Settings()))


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (at(2026, 11, 23, 7, 59), False),
        (at(2026, 11, 23, 8, 0), True),
        (at(2026, 11, 27, 16, 59), False),
        (at(2026, 11, 20, 16, 59), True),
        (at(2026, 11, 20, 17, 0), False),
        (at(2026, 11, 21, 10, 0), False),
        (at(2026, 11, 22, 10, 0), False),
        (at(2026, 11, 26, 10, 0), False),  # Thanksgiving
        (at(2026, 12, 25, 10, 0), False),
        (at(2026, 12, 24, 10, 0), True),
    ],
)
def test_open_or_closed(ca: SupportHours, moment: datetime, is_open: bool) -> None:
    assert ca.is_open(moment) is is_open


@pytest.mark.parametrize(
    ("moment", "opening"),
    [
        (at(2026, 11, 23, 7, 59), at(2026, 11, 23, 8, 0)),
        (at(2026, 11, 20, 17, 0), at(2026, 11, 23, 8, 0)),  # Friday evening: Monday morning
        (at(2026, 11, 25, 17, 30), at(2026, 11, 30, 8, 0)),  # Thanksgiving Thursday and the Friday after
        (at(2026, 3, 6, 18, 0), at(2026, 3, 9, 8, 0)),  # across the spring daylight-saving change
        (at(2026, 10, 30, 18, 0), at(2026, 11, 2, 8, 0)),  # across the autumn change
    ],
)
def test_next_opening(ca: SupportHours, moment: datetime, opening: datetime) -> None:
    found = ca.next_opening(moment)
    assert found == opening
    assert found is not None and found.astimezone(PACIFIC).hour == 8


def test_unknown_hours_make_no_claims() -> None:
    ct = SupportHours(load_profile("ct", Settings()))
    assert not ct.known
    assert ct.next_opening(at(2026, 11, 23, 10, 0)) is None
    assert ct.is_open(at(2026, 11, 23, 10, 0)) is False


def test_extra_closures_and_removed_holidays(ca: SupportHours) -> None:
    profile = ca.profile.model_copy(deep=True)
    profile.holidays.extra = ["2026-11-24"]
    profile.holidays.removed = ["2026-11-27"]
    hours = SupportHours(profile)
    assert not hours.is_open(at(2026, 11, 24, 10, 0))
    assert hours.is_open(at(2026, 11, 27, 10, 0))
