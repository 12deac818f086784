"""SQLite for the async engine without a thread hop per call.

aiosqlite runs every call (make a cursor, execute, fetch, close, commit) on a thread of its own and wakes
the event loop for each result: about four hops per statement, which was most of an article turn's time.
An SQLite statement on a local file takes microseconds, so here it runs on the event loop's thread
instead. SQLAlchemy's aiosqlite dialect is kept as is; ``make_engine`` hands it these connections through
``create_async_engine(async_creator=...)``, which takes any object with aiosqlite's interface.

The one wait that could block the loop is SQLite's busy handler (another connection is writing). The
sqlite3 connection is opened with no busy timeout, and a statement that finds the database locked is
retried here with ``asyncio.sleep`` between tries, so other turns go on meanwhile; after ``timeout``
seconds the error is raised as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, make_url

# Another connection holds the lock (SQLITE_BUSY), or is recovering the WAL (SQLITE_BUSY_RECOVERY, 261):
# waiting helps. Not SQLITE_BUSY_SNAPSHOT (517): the transaction must start again, as with SQLite's own busy
# handler. Not SQLITE_LOCKED: a conflict inside one connection, which waiting does not end.
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, 261})
FIRST_PAUSE, MAX_PAUSE = 0.001, 0.05  # seconds between tries while another connection writes


async def retry_busy(call: Callable[[], Any], timeout: float, connection: sqlite3.Connection) -> Any:
    """``call()``, tried again after a short sleep while SQLite says the database is locked.

    Only while nothing was written: ``executemany`` runs row by row, and a lock met after the first rows
    must not write those rows twice.
    """
    deadline, pause = None, FIRST_PAUSE
    changes = connection.total_changes
    while True:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode not in BUSY_CODES or connection.total_changes != changes:
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + timeout
            if now >= deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)


class InlineCursor:
    """An aiosqlite-like cursor whose calls run at once."""

    __slots__ = ("_cursor", "_timeout")

    def __init__(self, cursor: sqlite3.Cursor, timeout: float) -> None:
        self._cursor = cursor
        self._timeout = timeout

    def _retry(self, call: Callable[[], Any]) -> Any:
        return retry_busy(call, self._timeout, self._cursor.connection)

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        await self._retry(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(parameters)  # an iterator could not be read twice by a retry
        await self._retry(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """What SQLAlchemy's aiosqlite dialect uses of ``aiosqlite.Connection``, run on the caller's thread."""

    def __init__(self, connection: sqlite3.Connection, timeout: float) -> None:
        self._connection: sqlite3.Connection | None = connection  # the dialect checks it before commit
        self._timeout = timeout

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself (a turn's bookkeeping runs on it: ``bot.registry.plain``)."""
        return self._conn

    @property
    def timeout(self) -> float:
        """Seconds a statement waits while another connection writes."""
        return self._timeout

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor(), self._timeout)

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        connection = self._conn
        await retry_busy(connection.commit, self._timeout, connection)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, name: str, num_params: int, func: Any, **kwargs: Any) -> None:
        self._conn.create_function(name, num_params, func, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (also what SQLAlchemy calls when it terminates a connection)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def inline_creator(url: str | URL, timeout: float) -> Callable[[], Any]:
    """The ``async_creator`` for ``create_async_engine``: new inline connections to ``url``'s file."""
    # the file name and options (a "file:" URI with mode=, cache= ...) exactly as SQLAlchemy's pysqlite
    # dialect would read them from the URL
    args, options = SQLiteDialect_pysqlite().create_connect_args(make_url(url).set(drivername="sqlite"))
    options = {**options, "timeout": 0, "check_same_thread": False}

    open_file: Callable[..., sqlite3.Connection] = sqlite3.connect

    async def connect() -> InlineConnection:
        return InlineConnection(open_file(*args, **options), timeout)

    return connect
