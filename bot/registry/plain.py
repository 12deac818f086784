"""A turn's transaction, and the statements every turn runs: through the driver where that is cheaper.

A turn is one transaction on one connection, a synchronous Core ``Connection`` kept between turns
(``TurnConnections``), where ``AsyncEngine.begin`` would take one from the pool, begin, commit and give it
back, a hop into SQLAlchemy's greenlet each. An ``AsyncConnection`` on the same connection, in the same
transaction, is made only when a flow asks for one (for Core or the ORM).

A turn's bookkeeping (claim the delivery, load the conversation and its member, keep the answer, the
replies, the transcript and the state) is a handful of small statements. Through SQLAlchemy's asyncio layer
each costs a greenlet switch and an execution context, which on SQLite is many times the statement's own
work. So they go to the driver itself: on SQLite the turn's sqlite3 connection, on PostgreSQL its asyncpg
connection, where the first statement and the commit go through the DBAPI adapter SQLAlchemy wraps around it
(which begins and ends the transaction as SQLAlchemy's own statements would). Same transaction, same
statements (compiled once from the repository's own SQLAlchemy statements, with SQLAlchemy's own conversion
of each parameter), same busy handling, and driver errors raised as SQLAlchemy's so the engine classifies
them as before. The statements are written once (``Bookkeeping``); only how one statement runs differs with
the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from bot.registry import repo
from bot.registry.inline_sqlite import BUSY_CODES, InlineConnection, retry_busy
from bot.registry.models import Conversation, ProcessedUpdate
from bot.registry.repo import ConversationState, VerifiedMember
from bot.registry.session import unavailable


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
    fixed: Mapping[str, Any]  # parameters the statement itself gives (the 1 of ``hits + 1``)

    @classmethod
    def compile(cls, statement: Executable, dialect: Dialect, keys: Sequence[str] | None = None) -> Statement:
        """``statement`` as ``dialect`` sends it; ``keys`` are the columns an ``INSERT`` is given."""
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(keys) if keys else None
        )
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        processors = tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds)
        fixed = {
            name: bind.value
            for name, bind in zip(names, binds, strict=True)
            if not bind.required and bind.value is not None
        }
        return cls(compiled.string, names, processors, fixed)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for ``values``, converted as SQLAlchemy would."""
        if self.fixed:
            values = {**self.fixed, **values}
        return [
            value if process is None else process(value)
            for process, value in zip(self.processors, (values[name] for name in self.names), strict=True)
        ]


@dataclass(frozen=True, slots=True)
class TurnStatements:
    """The statements of a turn's bookkeeping, compiled from the repository's SQLAlchemy statements."""

    claim: Statement  # Bookkeeping.claim_delivery (as repo.claim_delivery, which the help desk uses)
    load: Statement  # Bookkeeping.load_conversation: the conversation and its member
    create: Statement  # Bookkeeping.load_conversation: on first contact
    answer: Statement  # Bookkeeping.record_answer
    gap: Statement  # Bookkeeping.record_unanswered
    keep: Statement  # Bookkeeping.keep_replies
    transcript: Statement  # Bookkeeping.add_transcript (one executemany)
    save: Statement  # Bookkeeping.save_conversation
    count: Statement  # Bookkeeping.count_hit (as repo.count_hit, which flows use)

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
            count=Statement.compile(repo._count_hit(name), dialect, ("key", "window_start", "hits")),
        )


SQLITE_STATEMENTS = TurnStatements.for_dialect(SQLiteDialect_aiosqlite())
_POSTGRES: Dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
POSTGRES_STATEMENTS = TurnStatements.for_dialect(_POSTGRES)


@functools.cache
def _statements_for(dialect: Dialect) -> TurnStatements:
    return TurnStatements.for_dialect(dialect)


class Bookkeeping:
    """A turn's bookkeeping on its connection, in its transaction. The statements are written once here;
    how one statement runs is ``_one`` (a row back), ``_run`` (how many rows it changed) and ``_many``:
    through SQLAlchemy here, straight through the driver in the subclasses."""

    def __init__(self, connection: Connection, statements: TurnStatements | None = None) -> None:
        self.connection = connection  # the turn's, as synchronous Core (see ``TurnConnections``)
        self.statements = statements or _statements_for(connection.dialect)

    # -- how a statement runs: through SQLAlchemy ------------------------------------------------------------

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        sql, args = statement.sql, tuple(statement.args(values))
        result = await greenlet_spawn(self.connection.exec_driver_sql, sql, args)
        row: Sequence[Any] | None = result.fetchone()  # the driver's rows are buffered: no hop to read them
        return row

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> int:
        sql, args = statement.sql, tuple(statement.args(values))
        result = await greenlet_spawn(self.connection.exec_driver_sql, sql, args)
        return int(result.rowcount)

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        args = [tuple(statement.args(row)) for row in rows]
        await greenlet_spawn(self.connection.exec_driver_sql, statement.sql, args)

    async def commit(self) -> None:
        """Commit the statements sent to the driver directly (those through SQLAlchemy are its own)."""

    def _announce(self, statement: Statement, parameters: Any, *, many: bool = False) -> None:
        """Tell the engine's ``before_cursor_execute`` listeners (a bench counting statements) about a
        statement sent to the driver directly, as SQLAlchemy tells them about its own."""
        sync = self.connection
        if sync._has_events or sync.engine._has_events:
            sync.dispatch.before_cursor_execute(sync, None, statement.sql, parameters, None, many)

    # -- the bookkeeping ------------------------------------------------------------------------------------

    async def claim_delivery(self, *, channel: str, delivery_id: str, now: datetime) -> bool:
        """Record a delivery id; False when it was processed before (a redelivery changes nothing).

        One ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent claim of the same id waits for the first
        transaction, then inserts nothing."""
        values = {"channel": channel, "delivery_id": delivery_id, "processed_at": now}
        return await self._run(self.statements.claim, values) > 0

    async def count_hit(self, *, kind: str, value: str, window: timedelta, now: datetime) -> int:
        """Count one more use of ``value`` for ``kind`` in its window (see ``repo.count_hit``): how many
        there have been in it, this one included."""
        values, _ = repo.hit_row(kind=kind, value=value, window=window, now=now)
        counted = await self._one(self.statements.count, values)
        assert counted is not None
        return int(counted[0])

    async def load_conversation(
        self, *, channel: str, user_id: str, registry: str, language: str, now: datetime
    ) -> tuple[ConversationState, VerifiedMember | None]:
        """The conversation on this channel, locked for this turn (created on first contact), and the
        member the chat account is linked to, or None."""
        chat = {"channel": channel, "user_id": user_id}
        found = await self._one(self.statements.load, chat)
        if found is None:
            values = {**chat, "registry": registry, "language": language, "state": {}}
            created = await self._one(self.statements.create, values | {"created_at": now, "updated_at": now})
            if created is not None:
                return ConversationState(int(created[0]), {}), None
            found = await self._one(self.statements.load, chat)  # made meanwhile by another process
            assert found is not None
        state = json.loads(found[1]) if isinstance(found[1], str) else found[1]
        return ConversationState(int(found[0]), state or {}), VerifiedMember.from_row(tuple(found)[2:])

    async def record_answer(
        self, *, conversation_id: int, registry: str, topic: str, language: str, question: str, now: datetime
    ) -> int:
        """Keep that article ``topic`` answered ``question`` (masked) in ``language``; returns the row the
        member's 👍 or 👎 is written to."""
        row = {
            "conversation_id": conversation_id,
            "registry": registry,
            "topic": topic,
            "language": language,
            "question": repo.mask_personal(question),
            "created_at": now,
        }
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
        """Keep a content gap (a question declined, asked back about, or whose answer ``topic`` got a 👎)
        for staff to review, without the e-mail addresses and numbers a member may have typed in it."""
        row = {
            "conversation_id": conversation_id,
            "registry": registry,
            "language": language,
            "text": repo.mask_personal(text),
            "created_at": now,
            "kind": kind,
            "topic": topic,
        }
        await self._run(self.statements.gap, row)

    async def keep_replies(self, *, channel: str, delivery_id: str, replies: str) -> None:
        """Keep the replies (JSON) a delivery got, with the delivery's claim."""
        values = {"b_channel": channel, "b_delivery_id": delivery_id, "b_replies": replies}
        await self._run(self.statements.keep, values)

    async def add_transcript(
        self, *, conversation_id: int, entries: Sequence[tuple[str, str]], now: datetime
    ) -> None:
        """Append ``(direction, text)`` entries to the conversation's transcript in one statement."""
        rows = [
            {"conversation_id": conversation_id, "direction": direction, "text": text, "created_at": now}
            for direction, text in entries
        ]
        if rows:
            await self._many(self.statements.transcript, rows)

    async def save_conversation(
        self, conversation_id: int, *, state: dict[str, Any], language: str, now: datetime
    ) -> None:
        """Store the state and language the turn ends with."""
        values = {"conversation_id": conversation_id, "state": state, "language": language, "updated_at": now}
        await self._run(self.statements.save, values)


class SqliteBookkeeping(Bookkeeping):
    """The bookkeeping straight on the turn's sqlite3 connection (see the module's docstring)."""

    def __init__(self, connection: Connection, sqlite: sqlite3.Connection, timeout: float) -> None:
        super().__init__(connection, SQLITE_STATEMENTS)
        self._sqlite = sqlite
        self._timeout = timeout

    # Each statement is tried at once, on the loop's thread (SQLite answers in microseconds); only when
    # another connection is writing does it wait, in ``retry_busy``, without blocking the loop.

    async def _execute(self, statement: Statement, values: Mapping[str, Any]) -> sqlite3.Cursor:
        args = statement.args(values)
        self._announce(statement, args)
        try:
            return self._sqlite.execute(statement.sql, args)
        except sqlite3.Error as error:
            return await self._again(statement, error, lambda: self._sqlite.execute(statement.sql, args))

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = (await self._execute(statement, values)).fetchone()
        return row

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> int:
        return (await self._execute(statement, values)).rowcount

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        args = [statement.args(row) for row in rows]
        self._announce(statement, args, many=True)
        written = self._sqlite.total_changes
        try:
            self._sqlite.executemany(statement.sql, args)
        except sqlite3.Error as error:
            if self._sqlite.total_changes != written:  # some rows went in: never write them twice
                raise self._wrapped(statement.sql, error) from None
            await self._again(statement, error, lambda: self._sqlite.executemany(statement.sql, args))

    async def commit(self) -> None:
        sqlite = self._sqlite
        if sqlite.in_transaction:
            try:
                await retry_busy(sqlite.commit, self._timeout, sqlite)
            except sqlite3.Error as error:
                raise self._wrapped("COMMIT", error) from None

    async def _again(
        self, statement: Statement, error: sqlite3.Error, call: Callable[[], sqlite3.Cursor]
    ) -> sqlite3.Cursor:
        """``call()`` once more after ``error``: waited for while the database is locked, else raised as
        SQLAlchemy raises it (without its parameters)."""
        if not isinstance(error, sqlite3.OperationalError) or error.sqlite_errorcode not in BUSY_CODES:
            raise self._wrapped(statement.sql, error) from None
        try:
            cursor: sqlite3.Cursor = await retry_busy(call, self._timeout, self._sqlite)
        except sqlite3.Error as again:
            raise self._wrapped(statement.sql, again) from None
        return cursor

    def _wrapped(self, sql: str, error: sqlite3.Error) -> StatementError:
        return DBAPIError.instance(
            sql, None, error, sqlite3.Error, hide_parameters=True, dialect=self.connection.dialect
        )


class PostgresBookkeeping(Bookkeeping):
    """The bookkeeping straight on the turn's asyncpg connection. The turn's first statement goes through
    the DBAPI connection SQLAlchemy wraps around it, which begins the transaction as SQLAlchemy's own
    statements would (so a flow's session joins it); the commit goes the same way."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection, POSTGRES_STATEMENTS)
        pooled = connection.connection
        self._dbapi: Any = pooled.dbapi_connection  # SQLAlchemy's adapter around the asyncpg connection
        self._driver: Any = pooled.driver_connection
        self._begun = False

    async def _call(self, statement: Statement, method: str, *args: Any) -> Any:
        self._announce(statement, args[0] if method == "executemany" else args, many=method == "executemany")
        try:
            return await getattr(self._driver, method)(statement.sql, *args)
        except _asyncpg_errors() as error:
            raise self._wrapped(statement.sql, error) from None

    async def _begin_with(self, statement: Statement, parameters: Any, *, many: bool = False) -> Any:
        """The turn's first statement, through the adapter (which begins the transaction): its cursor."""
        self._begun = True
        self._announce(statement, parameters, many=many)

        def run() -> Any:
            cursor = self._dbapi.cursor()
            (cursor.executemany if many else cursor.execute)(statement.sql, parameters)
            return cursor

        try:
            return await greenlet_spawn(run)
        except self.connection.dialect.loaded_dbapi.Error as error:
            raise self._wrapped(statement.sql, error) from None

    def _wrapped(self, sql: str, error: Exception) -> StatementError:
        # a connection the server has closed is said to be, as SQLAlchemy says it of its own statements
        lost = self.connection.dialect.is_disconnect(error, self._dbapi, None)  # type: ignore[arg-type]
        return DBAPIError.instance(
            sql, None, error, Exception, hide_parameters=True, dialect=_POSTGRES, connection_invalidated=lost
        )

    async def _one(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Any] | None:
        if not self._begun:
            row: Sequence[Any] | None = (await self._begin_with(statement, statement.args(values))).fetchone()
            return row
        found: Sequence[Any] | None = await self._call(statement, "fetchrow", *statement.args(values))
        return found

    async def _run(self, statement: Statement, values: Mapping[str, Any]) -> int:
        if not self._begun:
            return int((await self._begin_with(statement, statement.args(values))).rowcount)
        status = await self._call(statement, "execute", *statement.args(values))
        return int(str(status).rsplit(" ", 1)[-1])  # "INSERT 0 1", "UPDATE 1"

    async def _many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        args = [statement.args(row) for row in rows]
        if not self._begun:
            await self._begin_with(statement, args, many=True)
            return
        await self._call(statement, "executemany", args)

    async def commit(self) -> None:
        if self._begun:
            self._begun = False  # the next statement begins the next transaction
            try:
                await greenlet_spawn(self._dbapi.commit)
            except self.connection.dialect.loaded_dbapi.Error as error:
                raise self._wrapped("COMMIT", error) from None


def bookkeeping(connection: Connection) -> Bookkeeping:
    """The bookkeeping of a turn on ``connection`` (in its transaction): straight on the sqlite3 or asyncpg
    connection itself when it is one of those, through SQLAlchemy otherwise."""
    dialect = connection.dialect
    if dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        if isinstance(driver, InlineConnection):
            return SqliteBookkeeping(connection, driver.sqlite, driver.timeout)
    elif dialect.name == "postgresql" and dialect.driver == "asyncpg":
        return PostgresBookkeeping(connection)
    return Bookkeeping(connection)


class TurnTransaction:
    """One turn's transaction: its bookkeeping, and its connection for SQLAlchemy when a flow needs one."""

    def __init__(self, database: AsyncEngine, connection: Connection) -> None:
        self.database = database
        self.sync = connection
        self.books = bookkeeping(connection)
        self._connection: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        """The turn's connection for Core statements and ORM sessions, made when first asked for: the same
        pooled connection, in the same transaction, committed with the turn."""
        if self._connection is None:
            if not self.sync.in_transaction():
                # SQLAlchemy is told of the transaction the bookkeeping began (no statement: the driver has
                # begun it), so that a session joins it instead of owning it (and rolling it back on close)
                self.sync.begin()
            self._connection = AsyncConnection(self.database, self.sync)
        return self._connection

    async def commit(self) -> None:
        """Commit what the turn wrote so far: through SQLAlchemy once it has begun a transaction (a flow's
        statements, or bookkeeping that goes through it), else on the driver itself. What follows is a new
        transaction on the same connection."""
        if self.sync.in_transaction():
            await greenlet_spawn(self.sync.commit)
            self._connection = None  # made again, in the next transaction, when asked for
        else:
            await self.books.commit()


class TurnConnections:
    """The connections turns run on, each taken from ``database``'s pool once and kept between turns.

    A turn takes one, runs its transaction on it and gives it back committed, with no trip through
    SQLAlchemy's pool (a checkout, a rollback on return) and, on SQLite, no hop into its greenlet at all
    unless a flow asks for the ORM. A connection that saw an error is never kept: it goes back to the pool,
    or is closed outright when the database may be the reason (see ``_discard``), and the connections kept
    so far go back to the pool with it (``make_engine`` has the pool test a PostgreSQL connection before
    lending it). Up to the pool's size are kept; they count as lent out, so the pool may open as many again
    for everything else.
    """

    def __init__(self, database: AsyncEngine) -> None:
        self.database = database
        self._idle: list[Connection] = []
        pool_size = getattr(database.sync_engine.pool, "size", None)
        self._keep = pool_size() if callable(pool_size) else 1
        self._closed = False

    @contextlib.asynccontextmanager
    async def transaction(self, database: AsyncEngine | None = None) -> AsyncIterator[TurnTransaction]:
        """One turn's transaction, committed when the block ends and rolled back when it raises (errors are
        SQLAlchemy's, as from ``AsyncEngine.begin``). ``database`` is another engine to run it on."""
        database = database or self.database
        ours = database is self.database
        connection = self._kept() if ours else None
        if connection is None:
            connection = await greenlet_spawn(database.sync_engine.connect)
        try:
            transaction = TurnTransaction(database, connection)
            yield transaction
            await transaction.commit()
        except BaseException as error:
            await self._discard(connection, error)
            if ours and unavailable(error):  # the ones kept may have lost the database too
                await self.close(for_good=False)
            raise
        if ours and not self._closed and len(self._idle) < self._keep and not connection.invalidated:
            self._idle.append(connection)
        else:
            await greenlet_spawn(connection.close)

    def _kept(self) -> Connection | None:
        """A kept connection the driver still holds open (one the server closed meanwhile, on a restart,
        is let go)."""
        while self._idle:
            connection = self._idle.pop()
            closed = getattr(connection.connection.driver_connection, "is_closed", None)
            if closed is None or not closed():
                return connection
            connection.invalidate()
        return None

    @staticmethod
    async def _discard(connection: Connection, error: BaseException) -> None:
        """A failed turn's connection: rolled back and given back to the pool. It is closed outright instead
        when the turn was interrupted (a timeout: it may be halfway through a statement or a commit, and its
        driver may no longer know what the server holds), as SQLAlchemy closes a connection interrupted in a
        driver call, so that no later turn runs inside what is left of that transaction; and when the
        database is away or stalled, so that no later turn is lent a dead connection. Errors here are not
        the turn's: they are dropped, and the turn's own error is raised."""
        with contextlib.suppress(Exception):
            if not isinstance(error, Exception) or unavailable(error):
                connection.invalidate()  # outside the greenlet: the driver connection ends at once
            await asyncio.shield(greenlet_spawn(connection.close))

    async def close(self, *, for_good: bool = True) -> None:
        """Give the kept connections back to the pool; ``for_good`` (before the engine is disposed): keep
        none from now on."""
        self._closed = self._closed or for_good
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await greenlet_spawn(connection.close)
