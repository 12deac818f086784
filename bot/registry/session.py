"""Database engines and sessions. No module-global engine: the composition root builds one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.registry.inline_sqlite import inline_creator

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's write to finish
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """An async engine. SQLite gets WAL, foreign keys and a busy timeout; PostgreSQL a schema if given.

    Any SQLite URL (``sqlite:///file.db``, ``sqlite+aiosqlite:///file.db``) runs its statements on the event
    loop's thread (see ``inline_sqlite``); a locked database is waited for without blocking the loop, up to
    ``SQLITE_BUSY_TIMEOUT`` seconds.
    """
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        # SQLAlchemy's aiosqlite dialect, given connections that run on the loop's thread
        target = target.set(drivername="sqlite+aiosqlite")
        kwargs.setdefault("async_creator", inline_creator(target, SQLITE_BUSY_TIMEOUT))
    elif schema:
        kwargs.setdefault("connect_args", {"server_settings": {"search_path": schema}})
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
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Create or upgrade the schema with Alembic (never ``create_all``)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)
