"""SQLite runs on the event loop's thread: a locked database is waited for without stopping other members."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.app import App
from bot.config import Settings
from bot.engine import NotStored
from bot.registry import inline_sqlite
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


def suspended_in(task: asyncio.Task[str], module: ModuleType) -> bool:
    """Whether ``task`` is parked at an ``await`` inside ``module``'s code (following its chain of awaits).

    A task that blocks the event loop's thread is never seen parked: while it blocks, nothing else runs.
    """
    awaiting: Any = task.get_coro()
    while awaiting is not None:
        frame = getattr(awaiting, "cr_frame", None)
        if frame is not None and frame.f_code.co_filename == module.__file__:
            return True
        awaiting = getattr(awaiting, "cr_await", None)
    return False


async def ping_pong(rounds: int) -> None:
    """``rounds`` round trips between this coroutine and another task, each waiting for the other's event."""
    ping, pong = asyncio.Event(), asyncio.Event()

    async def partner() -> None:
        for _ in range(rounds):
            await ping.wait()
            ping.clear()
            pong.set()

    answering = asyncio.create_task(partner())
    for _ in range(rounds):
        ping.set()
        await pong.wait()
        pong.clear()
    await answering


async def test_a_turn_waits_for_another_writer_while_the_event_loop_goes_on(sqlite_app: App) -> None:
    other = hold_write_lock(sqlite_app)
    try:
        turn = asyncio.create_task(Chatter(sqlite_app.engine, "waiting").say("I forgot my password"))
        async with asyncio.timeout(10):  # a safety net only: nothing here is measured in time
            while not suspended_in(turn, inline_sqlite):  # the turn reaches the lock and waits for it...
                assert not turn.done()
                await asyncio.sleep(0)
            await ping_pong(20)  # ...while two other tasks take turns, twenty times over...
            assert await count_rows(sqlite_app, TranscriptEntry) == 0  # ...and reading goes on too
        assert suspended_in(turn, inline_sqlite)  # still waiting for the lock
    finally:
        other.execute("COMMIT")
        other.close()
    async with asyncio.timeout(5):
        answer = await turn
    assert "Forgot Password" in answer
    assert await count_rows(sqlite_app, TranscriptEntry) == 2  # the question and the answer, written once


async def test_a_lock_held_past_the_busy_timeout_gets_the_apology_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_session, "SQLITE_BUSY_TIMEOUT", 0.2)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'registry.db'}", rate_limit_per_minute=0)
    async with ready(App.build(settings, registry="ca", clock=Clock(MONDAY_MORNING))) as app:
        member = Chatter(app.engine, "patient")
        other = hold_write_lock(app)
        try:
            with pytest.raises(NotStored) as kept:  # the channel has the message delivered again
                await member.say("olvidé mi contraseña", delivery_id="kept")
            assert "(855) 645-0826" in kept.value.replies[0].text
            assert await count_rows(app, TranscriptEntry) == 0  # nothing half-written
        finally:
            other.execute("COMMIT")
            other.close()
        assert "Olvidó su contraseña" in await member.say("olvidé mi contraseña", delivery_id="kept")
        assert await count_rows(app, TranscriptEntry) == 2


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
