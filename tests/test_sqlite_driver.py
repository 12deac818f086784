"""SQLite runs on the event loop's thread: a locked database is waited for without stopping other members."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.app import App
from bot.config import Settings
from bot.messages import Reply
from bot.registry import session as registry_session
from bot.registry.models import Member, TranscriptEntry
from bot.registry.session import make_engine
from tests.conftest import MONDAY_MORNING, Clock, ready
from tests.helpers import Chatter, count_rows


def hold_write_lock(app: App) -> sqlite3.Connection:
    """Another connection (a second process, say) takes SQLite's write lock and keeps it."""
    other = sqlite3.connect(str(app.database.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def ticks_during(seconds: float) -> int:
    """How many times a 10 ms timer fired in ``seconds``: what a blocked event loop could not do."""
    fired = 0
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
        fired += 1
    return fired


async def test_a_turn_waits_for_another_writer_while_the_event_loop_goes_on(sqlite_app: App) -> None:
    other = hold_write_lock(sqlite_app)
    try:
        turn = asyncio.create_task(Chatter(sqlite_app.engine, "waiting").say("I forgot my password"))
        fired = await ticks_during(0.3)
        assert not turn.done()  # it is waiting for the lock...
        assert fired >= 10  # ...and other members' work (here a timer) went on meanwhile
        assert await count_rows(sqlite_app, TranscriptEntry) == 0  # reading is not blocked either
    finally:
        other.execute("COMMIT")
        other.close()
    async with asyncio.timeout(5):
        answer = await turn
    assert "Forgot Password" in answer
    assert await count_rows(sqlite_app, TranscriptEntry) == 2  # the question and the answer, written once


async def test_a_lock_held_past_the_busy_timeout_gets_the_apology_and_the_message_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_session, "SQLITE_BUSY_TIMEOUT", 0.2)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'registry.db'}", rate_limit_per_minute=0)
    async with ready(App.build(settings, registry="ca", clock=Clock(MONDAY_MORNING))) as app:
        delivered: list[list[Reply]] = []

        async def deliver_later(_channel: str, _user_id: str, replies: list[Reply]) -> bool:
            delivered.append(replies)
            return True

        app.engine.deliver_later = deliver_later
        member = Chatter(app.engine, "patient")
        other = hold_write_lock(app)
        try:
            apology = await member.say("olvidé mi contraseña", delivery_id="kept")
            assert "(855) 645-0826" in apology and "Forgot Password" not in apology
            assert await count_rows(app, TranscriptEntry) == 0  # nothing half-written
        finally:
            other.execute("COMMIT")
            other.close()
        async with asyncio.timeout(10):
            while not delivered:
                await asyncio.sleep(0.05)
        assert "Forgot Password" in delivered[0][0].text
        assert await count_rows(app, TranscriptEntry) == 2
        assert await member.say("olvidé mi contraseña", delivery_id="kept") == ""  # a redelivery


async def test_a_file_uri_keeps_its_options(sqlite_app: App) -> None:
    # "file:...?mode=ro" is read as a URI with its options: reading works, writing is refused
    database = sqlite_app.database.url.database
    read_only = make_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    try:
        async with read_only.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM members"))).scalar_one() > 0
            with pytest.raises(OperationalError, match="readonly"):
                await connection.execute(text("DELETE FROM members"))
    finally:
        await read_only.dispose()
    assert await count_rows(sqlite_app, Member) > 0
