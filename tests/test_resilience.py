"""Floods and a database that goes away: polite answers, nothing lost, nothing handled twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.app import App
from bot.messages import Reply
from bot.registry.models import TranscriptEntry
from bot.registry.session import make_engine
from tests.conftest import Clock
from tests.helpers import Chatter


async def test_a_flood_gets_one_polite_answer_then_silence(
    make_app: Callable[..., App], clock: Clock
) -> None:
    app = make_app(rate_limit_per_minute=3)
    await app.migrate()
    try:
        member = Chatter(app.engine, "flood")
        answers = [await member.say(f"olvidé mi contraseña {n}") for n in range(5)]
        assert all("Forgot Password" in answer for answer in answers[:3])
        assert "Espere un minuto" in answers[3]
        assert answers[4] == ""
        assert "Forgot Password" in await Chatter(app.engine, "someone-else").say("forgot my password")
        clock.now += timedelta(seconds=61)
        assert "Forgot Password" in await member.say("olvidé mi contraseña")
    finally:
        await app.close()


async def test_a_message_sent_while_the_database_is_away_is_answered_when_it_returns(
    app: App, tmp_path: Path
) -> None:
    delivered: list[tuple[str, str, list[Reply]]] = []

    async def deliver_later(channel: str, user_id: str, replies: list[Reply]) -> bool:
        delivered.append((channel, user_id, replies))
        return True

    app.engine.deliver_later = deliver_later
    working = app.engine.database
    url = str(app.database.url)
    unreachable = (
        f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'registry.db'}"
        if url.startswith("sqlite")
        else "postgresql+asyncpg://postgres@127.0.0.1:9/test"  # nothing listens on the discard port
    )
    broken = make_engine(unreachable)
    app.engine.database = broken
    member = Chatter(app.engine, "patient")
    try:
        apology = await member.say("olvidé mi contraseña", delivery_id="kept-1")
        assert "problema técnico" in apology and "(855) 645-0826" in apology
        app.engine.database = working  # the database is back
        async with asyncio.timeout(10):
            while not delivered:
                await asyncio.sleep(0.05)
    finally:
        app.engine.database = working
        await broken.dispose()
    ((channel, user_id, replies),) = delivered
    assert (channel, user_id) == ("test", "patient") and "Forgot Password" in replies[0].text
    assert await member.say("olvidé mi contraseña", delivery_id="kept-1") == ""  # a redelivery: nothing more
    async with app.sessionmaker() as session:
        query = select(func.count()).select_from(TranscriptEntry).where(TranscriptEntry.direction == "in")
        assert (await session.execute(query)).scalar_one() == 1
