"""The statements every turn runs, through the database driver itself where that is cheaper.

A turn's bookkeeping (claim the delivery, load the conversation and its member, keep the answer, the
replies, the transcript and the state) is a handful of small statements. Through SQLAlchemy's asyncio layer
each costs a greenlet switch and an execution context, which on SQLite is many times the statement's own
work. So on SQLite these statements run straight on the turn's sqlite3 connection, the very connection
SQLAlchemy opened for the turn's transaction (flows still get an ORM session on it): same transaction, same
statements (compiled once from the repository's own SQLAlchemy statements, with SQLAlchemy's own conversion
of each parameter), same busy handling, and driver errors raised as SQLAlchemy's so the engine classifies
them as before. On PostgreSQL the repository's functions run as they are.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.registry import repo
from bot.registry.inline_sqlite import InlineConnection, retry_busy
from bot.registry.models import Conversation, ProcessedUpdate
from bot.registry.repo import ConversationState, VerifiedMember


@functools.cache
def _asyncpg_errors() -> tuple[type[Exception], ...]:
    """The PostgreSQL driver's own errors (imported only with PostgreSQL, which has loaded it already)."""
    import asyncpg  # type: ignore[import-untyped]

    return (asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement compiled for a dialect: its SQL, and its parameters in order with SQLAlchemy's own
    conversion for each (a datetime as SQLite keeps it, a state as JSON)."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(cls, statement: Executable, dialect: Dialect, keys: Sequence[str] | None = None) -> Statement:
        """``statement`` as ``dialect`` sends it; ``keys`` are the columns an ``INSERT`` is given."""
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(keys) if keys else None
        )
        names = tuple(compiled.positiontup or ())
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        return cls(compiled.string, names, processors)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for ``values``, converted as SQLAlchemy would."""
        return [
            value if process is None else process(value)
            for process, value in zip(self.processors, (values[name] for name in self.names), strict=True)
        ]


@dataclass(frozen=True, slots=True)
class TurnStatements:
    """The statements of a turn's bookkeeping, from ``bot.registry.repo`` (the objects it runs itself)."""

    claim: Statement  # repo.claim_delivery
    load: Statement  # repo.load_conversation: the conversation and its member
    create: Statement  # repo.load_conversation: on first contact
    answer: Statement  # repo.record_answer
    gap: Statement  # repo.record_unanswered
    keep: Statement  # repo.keep_replies
    transcript: Statement  # repo.add_transcript (one executemany)
    save: Statement  # repo.save_conversation

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> TurnStatements:
        name = dialect.name
        return cls(
            claim=Statement.compile(
                repo._insert_ignoring_conflicts(name, ProcessedUpdate.__tablename__),
                dialect,
                ("channel", "delivery_id", "processed_at"),
            ),
            load=Statement.compile(repo._CONVERSATION_AND_MEMBER, dialect),
            create=Statement.compile(
                repo._insert_ignoring_conflicts(name, Conversation.__tablename__, returning="id"),
                dialect,
                ("channel", "user_id", "registry", "language", "state", "created_at", "updated_at"),
            ),
            answer=Statement.compile(
                repo._INSERT_ANSWER,
                dialect,
                ("conversation_id", "registry", "topic", "language", "question", "created_at"),
            ),
            gap=Statement.compile(
                repo._INSERT_UNANSWERED,
                dialect,
                ("conversation_id", "registry", "language", "text", "created_at", "kind", "topic"),
            ),
            keep=Statement.compile(repo._KEEP_REPLIES, dialect),
            transcript=Statement.compile(
                repo._INSERT_TRANSCRIPT, dialect, ("conversation_id", "direction", "text", "created_at")
            ),
            save=Statement.compile(repo._SAVE_CONVERSATION, dialect),
        )


SQLITE_STATEMENTS = TurnStatements.for_dialect(SQLiteDialect_aiosqlite())


class Bookkeeping:
    """A turn's bookkeeping on its connection, through SQLAlchemy Core (the repository's functions)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    def _announce(self, statement: Statement, parameters: Any, *, many: bool = False) -> None:
        """Tell the engine's ``before_cursor_execute`` listeners (a bench counting statements) about a
        statement sent to the driver directly, as SQLAlchemy tells them about its own."""
        sync = self.connection.sync_connection
        if sync is not None and (sync._has_events or sync.engine._has_events):
            sync.dispatch.before_cursor_execute(sync, None, statement.sql, parameters, None, many)

    async def claim_delivery(self, *, channel: str, delivery_id: str, now: datetime) -> bool:
        return await repo.claim_delivery(self.connection, channel=channel, delivery_id=delivery_id, now=now)

    async def load_conversation(
        self, *, channel: str, user_id: str, registry: str, language: str, now: datetime
    ) -> tuple[ConversationState, VerifiedMember | None]:
        return await repo.load_conversation(
            self.connection, channel=channel, user_id=user_id, registry=registry, language=language, now=now
        )

    async def record_answer(
        self, *, conversation_id: int, registry: str, topic: str, language: str, question: str, now: datetime
    ) -> int:
        return await repo.record_answer(
            self.connection,
            conversation_id=conversation_id,
            registry=registry,
            topic=topic,
            language=language,
            question=question,
            now=now,
        )

    async def record_unanswered(
        self,
        *,
        conversation_id: int,
        registry: str,
        text: str,
        language: str,
        now: datetime,
        kind: str = "unknown",
        topic: str | None = None,
    ) -> None:
        await repo.record_unanswered(
            self.connection,
            conversation_id=conversation_id,
            registry=registry,
            text=text,
            language=language,
            now=now,
            kind=kind,
            topic=topic,
        )

    async def keep_replies(self, *, channel: str, delivery_id: str, replies: str) -> None:
        await repo.keep_replies(self.connection, channel=channel, delivery_id=delivery_id, replies=replies)

    async def add_transcript(
        self, *, conversation_id: int, entries: Sequence[tuple[str, str]], now: datetime
    ) -> None:
        await repo.add_transcript(self.connection, conversation_id=conversation_id, entries=entries, now=now)

    async def save_conversation(
        self, conversation_id: int, *, state: dict[str, Any], language: str, now: datetime
    ) -> None:
        await repo.save_conversation(
            self.connection, conversation_id, state=state, language=language, now=now
        )


class DriverBookkeeping(Bookkeeping):
    """The bookkeeping straight on the driver's connection, written once for both drivers: each says how
    to run one of ``statements`` (``_one``, ``_run``, ``_many``)."""

    statements: TurnStatements

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        raise NotImplementedError

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    async def load_conversation(
        self, *, channel: str, user_id: str, registry: str, language: str, now: datetime
    ) -> tuple[ConversationState, VerifiedMember | None]:
        chat = {"channel": channel, "user_id": user_id}
        found = await self._one(self.statements.load, chat)
        if found is None:
            values = repo.new_conversation_row(chat, registry=registry, language=language, now=now)
            created = await self._one(self.statements.create, values)
            if created is not None:
                return ConversationState(int(created[0]), {}), None
            found = await self._one(self.statements.load, chat)  # made meanwhile by another process
            assert found is not None
        state = json.loads(found[1]) if isinstance(found[1], str) else found[1]
        return ConversationState(int(found[0]), state or {}), VerifiedMember.from_row(tuple(found)[2:])

    async def record_answer(
        self, *, conversation_id: int, registry: str, topic: str, language: str, question: str, now: datetime
    ) -> int:
        row = repo.answer_row(
            conversation_id=conversation_id,
            registry=registry,
            topic=topic,
            language=language,
            question=question,
            now=now,
        )
        created = await self._one(self.statements.answer, row)
        assert created is not None
        return int(created[0])

    async def record_unanswered(
        self,
        *,
        conversation_id: int,
        registry: str,
        text: str,
        language: str,
        now: datetime,
        kind: str = "unknown",
        topic: str | None = None,
    ) -> None:
        row = repo.gap_row(
            conversation_id=conversation_id,
            registry=registry,
            text=text,
            language=language,
            now=now,
            kind=kind,
            topic=topic,
        )
        await self._run(self.statements.gap, row)

    async def keep_replies(self, *, channel: str, delivery_id: str, replies: str) -> None:
        values = {"b_channel": channel, "b_delivery_id": delivery_id, "b_replies": replies}
        await self._run(self.statements.keep, values)

    async def add_transcript(
        self, *, conversation_id: int, entries: Sequence[tuple[str, str]], now: datetime
    ) -> None:
        if entries:
            await self._many(self.statements.transcript, repo.transcript_rows(conversation_id, entries, now))

    async def save_conversation(
        self, conversation_id: int, *, state: dict[str, Any], language: str, now: datetime
    ) -> None:
        values = {"conversation_id": conversation_id, "state": state, "language": language, "updated_at": now}
        await self._run(self.statements.save, values)


class SqliteBookkeeping(DriverBookkeeping):
    """The bookkeeping straight on the turn's sqlite3 connection (see the module's docstring)."""

    statements = SQLITE_STATEMENTS

    def __init__(self, connection: AsyncConnection, sqlite: sqlite3.Connection, timeout: float) -> None:
        super().__init__(connection)
        self._sqlite = sqlite
        self._timeout = timeout

    async def _cursor(self, statement: Statement, call: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        try:
            cursor: sqlite3.Cursor = await retry_busy(call, self._timeout, self._sqlite)
        except sqlite3.Error as error:
            raise _as_sqlalchemy(statement, error) from None
        return cursor

    async def _execute(self, statement: Statement, values: Mapping[str, Any]) -> sqlite3.Cursor:
        args = statement.args(values)
        self._announce(statement, args)
        return await self._cursor(statement, lambda: self._sqlite.execute(statement.sql, args))

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = (await self._execute(statement, values)).fetchone()
        return row

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> None:
        await self._execute(statement, values)

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        args = [statement.args(row) for row in rows]
        self._announce(statement, args, many=True)
        await self._cursor(statement, lambda: self._sqlite.executemany(statement.sql, args))

    async def claim_delivery(self, *, channel: str, delivery_id: str, now: datetime) -> bool:
        values = {"channel": channel, "delivery_id": delivery_id, "processed_at": now}
        return (await self._execute(SQLITE_STATEMENTS.claim, values)).rowcount > 0


_POSTGRES: Dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
POSTGRES_STATEMENTS = TurnStatements.for_dialect(_POSTGRES)


class PostgresBookkeeping(DriverBookkeeping):
    """The bookkeeping straight on the turn's asyncpg connection, once SQLAlchemy has begun the
    transaction on it (the delivery is claimed through SQLAlchemy: that begins it)."""

    statements = POSTGRES_STATEMENTS

    def __init__(self, connection: AsyncConnection, driver: Any) -> None:
        super().__init__(connection)
        self._driver = driver
        self._begun = False

    async def _call(self, statement: Statement, method: str, args: Any) -> Any:
        if not self._begun:  # never outside the turn's transaction
            raise RuntimeError("the delivery must be claimed first: it begins the transaction")
        self._announce(statement, args, many=method == "executemany")
        call = getattr(self._driver, method)
        try:
            return await (
                call(statement.sql, args) if method == "executemany" else call(statement.sql, *args)
            )
        except _asyncpg_errors() as error:
            raise DBAPIError.instance(
                statement.sql, None, error, Exception, hide_parameters=True, dialect=_POSTGRES
            ) from None

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await self._call(statement, "fetchrow", statement.args(values))
        return row

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> None:
        await self._call(statement, "execute", statement.args(values))

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        await self._call(statement, "executemany", [statement.args(row) for row in rows])

    async def claim_delivery(self, *, channel: str, delivery_id: str, now: datetime) -> bool:
        claimed = await super().claim_delivery(channel=channel, delivery_id=delivery_id, now=now)
        self._begun = True
        return claimed


def _as_sqlalchemy(statement: Statement, error: sqlite3.Error) -> Exception:
    """A driver error as SQLAlchemy raises it (``OperationalError`` for a locked database, ...), without
    the parameters (they hold members' words): the engine tells such errors apart as it always has."""
    return DBAPIError.instance(
        statement.sql, None, error, sqlite3.Error, hide_parameters=True, dialect=SQLiteDialect_aiosqlite()
    )


async def bookkeeping(connection: AsyncConnection) -> Bookkeeping:
    """The bookkeeping of a turn on ``connection`` (in its transaction): on the sqlite3 connection itself
    when the database is SQLite, through the repository's functions otherwise."""
    if connection.dialect.name == "sqlite":
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if isinstance(driver, InlineConnection):
            return SqliteBookkeeping(connection, driver.sqlite, driver.timeout)
    elif connection.dialect.name == "postgresql" and connection.dialect.driver == "asyncpg":
        raw = await connection.get_raw_connection()
        return PostgresBookkeeping(connection, raw.driver_connection)
    return Bookkeeping(connection)
