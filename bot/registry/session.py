"""Database engines and sessions. No module-global engine: the composition root builds one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.registry.inline_sqlite import inline_creator

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's write to finish
# PostgreSQL error classes that mean "the database cannot serve now", not "this statement is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (57014: statement timeout),
# 55P03 lock not available (lock timeout), 40001/40P01 serialization failure and deadlock.
_UNAVAILABLE_STATES = ("08", "53", "57", "55P03", "40001", "40P01")


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is away, stalled or overloaded (a retry later may succeed)."""
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:  # the server closed the connection (a restart, a failover)
            return True
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES)
    return False


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(
    url: str,
    *,
    schema: str | None = None,
    statement_timeout: float | None = None,
    lock_timeout: float | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine. SQLite gets WAL, foreign keys and a busy timeout; PostgreSQL a schema if given, and
    the statement and lock timeouts (seconds) that keep a stalled database from holding a turn for long.

    Any SQLite URL (``sqlite:///file.db``, ``sqlite+aiosqlite:///file.db``) runs its statements on the event
    loop's thread (see ``inline_sqlite``); a locked database is waited for without blocking the loop, up to
    ``SQLITE_BUSY_TIMEOUT`` seconds. No engine ever puts statement parameters (members' e-mail addresses,
    what they wrote) in an error message or a log line.
    """
    kwargs.setdefault("hide_parameters", True)
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        # SQLAlchemy's aiosqlite dialect, given connections that run on the loop's thread
        target = target.set(drivername="sqlite+aiosqlite")
        kwargs.setdefault("async_creator", inline_creator(target, SQLITE_BUSY_TIMEOUT))
    else:
        # turns keep their connections (``plain.TurnConnections``), so the pool lends few; each one lent is
        # tested first, so that after a restart of the server no dead connection is lent again
        kwargs.setdefault("pool_pre_ping", True)
        server_settings: dict[str, str] = {}
        if schema:
            server_settings["search_path"] = schema
        for name, seconds in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout)):
            if seconds:
                server_settings[name] = str(max(1, round(seconds * 1000)))  # milliseconds
        if server_settings:
            kwargs.setdefault("connect_args", {"server_settings": server_settings})
    engine = create_async_engine(target, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


SESSION_OPTIONS: dict[str, Any] = {"expire_on_commit": False}


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, **SESSION_OPTIONS)


def session_in(connection: AsyncConnection) -> AsyncSession:
    """An ORM session inside ``connection``'s transaction: its flushes go there, the connection commits."""
    return AsyncSession(bind=connection, **SESSION_OPTIONS)


def alembic_config() -> Config:
    """Alembic's configuration for the project's migrations (imported only when a migration runs)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Create or upgrade the schema with Alembic (never ``create_all``); a migration may take longer than
    the timeouts a turn gets."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            await connection.execute(text("SET LOCAL lock_timeout = 0"))
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)
