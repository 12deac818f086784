"""The limit of an article turn: its statements through the plain driver, and one search.

An article turn in the engine (``Engine._handle``, ``Router._answer_asking_feedback``) runs, in one
transaction: claim the delivery; load the conversation and the member its chat account is linked to
(creating the conversation on first contact); the search; keep the answer (or, when the question is asked
back about or declined, the content gap); keep the replies with the delivery; the transcript; the state.
Here the same statements, compiled once from the repository's own SQLAlchemy statements for the database's
dialect, run through sqlite3 or asyncpg with the same parameters, one transaction per turn, around one
``Understander.understand``: what a turn would cost if everything but the driver and the search were free.

A question that starts an errand or a hand-off runs that flow's statements in the engine (a few questions
in a hundred); here it runs the statements of an article turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Dialect, make_url

from bot.intents import Understander, Understanding
from bot.messages import Reply, replies_to_json
from bot.registry import repo
from bot.registry.plain import Statement, TurnStatements
from bot.registry.session import SQLITE_BUSY_TIMEOUT
from bot.router import Router
from bot.understanding.message import Message

logger = logging.getLogger(__name__)


# --- statements -------------------------------------------------------------------------------------------


# --- plain drivers ----------------------------------------------------------------------------------------


class PlainConnection(Protocol):
    """A driver's connection, as the limit turn uses it."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def fetchone(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None: ...

    async def execute(self, statement: Statement, values: Mapping[str, Any]) -> None: ...

    async def executemany(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class SqliteConnection:
    """sqlite3 on the caller's thread, opened and set up as ``make_engine`` opens the engine's connections
    (WAL, foreign keys, ``synchronous=NORMAL``; sqlite3 begins the transaction before the first write)."""

    def __init__(self, url: str) -> None:
        args, options = SQLiteDialect_pysqlite().create_connect_args(make_url(url).set(drivername="sqlite"))
        open_file: Callable[..., sqlite3.Connection] = sqlite3.connect
        self.connection = open_file(*args, **{**options, "timeout": SQLITE_BUSY_TIMEOUT})
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            self.connection.execute(f"PRAGMA {pragma}")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    async def fetchone(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self.connection.execute(statement.sql, statement.args(values)).fetchone()
        return row

    async def execute(self, statement: Statement, values: Mapping[str, Any]) -> None:
        self.connection.execute(statement.sql, statement.args(values))

    async def executemany(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        self.connection.executemany(statement.sql, [statement.args(row) for row in rows])

    async def close(self) -> None:
        self.connection.close()


class AsyncpgConnection:
    """asyncpg, connected as SQLAlchemy's asyncpg dialect connects (its own statement cache prepares each
    statement once); ``BEGIN``, one round trip per statement, ``COMMIT``, as the engine's turn."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str, dialect: Dialect, *, schema: str | None) -> AsyncpgConnection:
        import asyncpg  # type: ignore[import-untyped]

        args, options = dialect.create_connect_args(make_url(url))
        options.pop("async_creator_fn", None)
        if schema:
            options["server_settings"] = {"search_path": schema}
        return cls(await asyncpg.connect(*args, **options))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.connection.transaction():
            yield

    async def fetchone(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self.connection.fetchrow(statement.sql, *statement.args(values))
        return row

    async def execute(self, statement: Statement, values: Mapping[str, Any]) -> None:
        await self.connection.execute(statement.sql, *statement.args(values))

    async def executemany(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        await self.connection.executemany(statement.sql, [statement.args(row) for row in rows])

    async def close(self) -> None:
        await self.connection.close()


# --- the turn ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Said:
    """What the assistant said in a turn, in the forms the turn stores: the replies as kept with the
    delivery, the transcript's lines, and the buttons remembered in the state."""

    replies: str
    lines: tuple[str, ...]
    shown: list[list[str]]

    @classmethod
    def of(cls, replies: list[Reply]) -> Said:
        """As ``Engine._handle`` stores ``replies``."""
        lines = []
        for reply in replies:
            links = "\n".join(f"{link.label}: {link.url}" for link in reply.links)
            lines.append(f"{reply.text}\n\n{links}" if links else reply.text)
        state: dict[str, Any] = {}
        Router.shown(state, replies)
        return cls(replies_to_json(replies), tuple(lines), state["shown"])


class ArticleLimit:
    """Article turns reduced to their statements, through the plain driver, and one search.

    ``said`` gives what the engine answered to a question (the bench keeps the engine's replies), so the
    rows written here are those the engine writes. ``connections`` are used one turn at a time each.
    """

    def __init__(
        self,
        *,
        connections: Sequence[PlainConnection],
        statements: TurnStatements,
        understander: Understander,
        registry: str,
        said: Callable[[str, Understanding], Said],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connections = list(connections)
        self.statements = statements
        self.understander = understander
        self.registry = registry
        self.said = said
        self.clock = clock
        self._free: asyncio.Queue[PlainConnection] = asyncio.Queue()
        for connection in connections:
            self._free.put_nowait(connection)

    @classmethod
    async def open(
        cls,
        url: str,
        dialect: Dialect,
        *,
        schema: str | None,
        concurrency: int,
        understander: Understander,
        registry: str,
        said: Callable[[str, Understanding], Said],
    ) -> ArticleLimit:
        """On the database at ``url``: one sqlite3 connection, or ``concurrency`` asyncpg connections."""
        connections: list[PlainConnection] = []
        if dialect.name == "sqlite":
            connections.append(SqliteConnection(url))
        else:
            for _ in range(concurrency):
                connections.append(await AsyncpgConnection.open(url, dialect, schema=schema))
        statements = TurnStatements.for_dialect(dialect)
        return cls(
            connections=connections,
            statements=statements,
            understander=understander,
            registry=registry,
            said=said,
        )

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()

    async def turn(self, *, channel: str, user_id: str, delivery_id: str, text: str, lang: str) -> int:
        """One article turn; how many statements it ran."""
        connection = await self._free.get()
        try:
            return await self._turn(connection, channel, user_id, delivery_id, text, lang)
        finally:
            self._free.put_nowait(connection)

    async def _turn(
        self, db: PlainConnection, channel: str, user_id: str, delivery_id: str, text: str, lang: str
    ) -> int:
        s, now, ran = self.statements, self.clock(), 5
        state: dict[str, Any]
        async with db.transaction():
            await db.execute(s.claim, {"channel": channel, "delivery_id": delivery_id, "processed_at": now})
            chat = {"channel": channel, "user_id": user_id}
            found = await db.fetchone(s.load, chat)
            if found is None:
                values = {
                    **chat,
                    "registry": self.registry,
                    "language": lang,
                    "state": {},
                    "created_at": now,
                    "updated_at": now,
                }
                created = await db.fetchone(s.create, values)
                assert created is not None
                conversation_id, state, ran = created[0], {}, ran + 1
            else:
                conversation_id, raw = found[0], found[1]
                state = (json.loads(raw) if isinstance(raw, str) else raw) or {}
            understanding = self.understander.understand(Message.of(text, lang), self.registry)
            state.pop("question", None)
            if understanding.kind == "answer" and understanding.name:
                answer = {
                    "conversation_id": conversation_id,
                    "registry": self.registry,
                    "topic": understanding.name,
                    "language": lang,
                    "question": repo.mask_personal(text),
                    "created_at": now,
                }
                feedback = await db.fetchone(s.answer, answer)
                assert feedback is not None
                state["answered"], ran = [feedback[0], text], ran + 1
            elif understanding.kind in ("clarify", "unknown"):
                gap = {
                    "conversation_id": conversation_id,
                    "registry": self.registry,
                    "language": lang,
                    "text": repo.mask_personal(text),
                    "created_at": now,
                    "kind": understanding.kind,
                    "topic": None,
                }
                await db.execute(s.gap, gap)
                state["question"], ran = text, ran + 1
            said = self.said(text, understanding)
            state.setdefault("memory", {})
            state["greeted"], state["shown"] = True, said.shown
            state["lang"], state["lang_explicit"] = lang, False
            delivery = {"b_channel": channel, "b_delivery_id": delivery_id, "b_replies": said.replies}
            await db.execute(s.keep, delivery)
            lines = [("in", text), *(("out", line) for line in said.lines)]
            rows = [
                {"conversation_id": conversation_id, "direction": direction, "text": line, "created_at": now}
                for direction, line in lines
            ]
            await db.executemany(s.transcript, rows)
            save = {"conversation_id": conversation_id, "state": state, "language": lang, "updated_at": now}
            await db.execute(s.save, save)
        return ran
