"""Asking for a person: an escalation is written, and the member hears honestly when staff will answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import App
from bot.registry.models import Escalation
from tests.conftest import Clock
from tests.helpers import Chatter

PACIFIC = ZoneInfo("America/Los_Angeles")


def pacific(*args: int) -> datetime:
    return datetime(*args, tzinfo=PACIFIC)


async def escalations(app: App) -> list[Escalation]:
    async with app.sessionmaker() as session:
        return list((await session.execute(select(Escalation).order_by(Escalation.id))).scalars())


async def ask_for_a_person(member: Chatter, opening: str, question: str) -> str:
    await member.say(opening)
    return await member.say(question)


async def test_during_hours_staff_join_in_this_chat(app: App, clock: Clock) -> None:
    clock.now = pacific(2026, 11, 23, 8, 0)  # Monday, the minute the help desk opens
    events: list[tuple[str, int]] = []

    async def listener(event: str, row_id: int) -> None:
        events.append((event, row_id))

    app.engine.listeners.append(listener)
    text = await ask_for_a_person(
        Chatter(app.engine, "open"), "talk to a person", "My documents were rejected"
    )
    assert "answer you here in this chat" in text
    (escalation,) = await escalations(app)
    assert (escalation.status, escalation.after_hours, escalation.language) == ("open", False, "en")
    assert escalation.question == "My documents were rejected"
    assert events == [("escalation", escalation.id)]


@pytest.mark.parametrize(
    ("moment", "opening", "question", "expected"),
    [
        # 7:59 on a Monday: opens in a minute
        (
            pacific(2026, 11, 23, 7, 59),
            "talk to a person",
            "My profile is wrong",
            "Monday, November 23 at 8:00 AM",
        ),
        # Friday 17:00 sharp, in Spanish: Monday morning
        (
            pacific(2026, 11, 20, 17, 0),
            "quiero hablar con una persona",
            "Mis documentos no aparecen",
            "lunes, 23 de noviembre a las 8:00",
        ),
        # Saturday, in Chinese
        (pacific(2026, 11, 21, 11, 0), "我要找人工客服", "我的文件一直没有审核", "11月23日星期一"),
        # Thanksgiving and the state holiday after it: the issue's own example
        (
            pacific(2026, 11, 26, 10, 0),
            "talk to a person",
            "Where is my certificate?",
            "Monday, November 30 at 8:00 AM Pacific Time",
        ),
        # the weekend the clocks spring forward: still 8:00 local time on Monday
        (
            pacific(2026, 3, 7, 12, 0),
            "talk to a person",
            "I need help with my hours",
            "Monday, March 9 at 8:00 AM",
        ),
    ],
)
async def test_out_of_hours_the_member_is_told_when_staff_are_back(
    app: App, clock: Clock, moment: datetime, opening: str, question: str, expected: str
) -> None:
    clock.now = moment
    text = await ask_for_a_person(Chatter(app.engine, f"closed-{moment:%m%d%H%M}"), opening, question)
    assert expected in text, text
    assert "(855) 645-0826" in text
    (escalation,) = await escalations(app)
    assert escalation.after_hours is True and escalation.question == question


async def test_hours_command_and_question_give_the_same_answer(app: App, clock: Clock) -> None:
    clock.now = pacific(2026, 11, 20, 16, 59)
    member = Chatter(app.engine, "hours")
    assert "open right now" in await member.say("/hours")
    clock.now = pacific(2026, 11, 20, 17, 0)
    by_command = await member.say("/hours")
    by_question = await member.say("are you open?")
    assert "closed right now" in by_command and "Monday, November 23 at 8:00 AM" in by_command
    assert by_command == by_question


@pytest.fixture
async def connecticut(make_app: Callable[..., App]) -> AsyncIterator[App]:
    application = make_app("ct")
    await application.migrate()
    try:
        yield application
    finally:
        await application.close()


async def test_unknown_hours_make_no_open_now_claims(connecticut: App) -> None:
    member = Chatter(connecticut.engine, "ct")
    text = await ask_for_a_person(member, "talk to a person", "How do I send my transcript?")
    assert "as soon as they can" in text and "closed" not in text and "open" not in text
    (escalation,) = await escalations(connecticut)
    assert escalation.registry_key == "ct"
