"""Shared fixtures: a migrated database on SQLite and (when configured) PostgreSQL, and a running app."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import App
from bot.config import Settings
from bot.registry.session import make_engine

# PostgreSQL tests run when this is set (CI sets it); each test gets a schema of its own, dropped after.
POSTGRES_URL = os.environ.get("REGISTRY_BOT_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgresql"]

# A fixed Monday 10:00 in California: the help desk is open.
MONDAY_MORNING = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the engine."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """(database URL, schema) of an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}", None
        return
    async with postgres_schema() as schema:
        yield POSTGRES_URL, schema


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema on the test PostgreSQL server, dropped afterwards (skips when none is configured)."""
    if not POSTGRES_URL:
        pytest.skip("REGISTRY_BOT_TEST_POSTGRES_URL is not set")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY_MORNING)


@pytest.fixture
def make_app(database: tuple[str, str | None], clock: Clock) -> Callable[..., App]:
    url, schema = database

    def build(registry: str = "ca", **overrides: object) -> App:
        settings = Settings(database_url=url, database_schema=schema, **overrides)  # type: ignore[arg-type]
        return App.build(settings, registry=registry, clock=clock)

    return build


@pytest.fixture
async def app(make_app: Callable[..., App]) -> AsyncIterator[App]:
    """The California assistant on a migrated database with the demo data."""
    async with ready(make_app()) as application:
        yield application


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[App]:
    """The California assistant on a SQLite file of its own, with no rate limit (for tests that send many
    messages fast, and for what is particular to SQLite)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'registry.db'}", rate_limit_per_minute=0)
    async with ready(App.build(settings, registry="ca", clock=Clock(MONDAY_MORNING))) as application:
        yield application


@contextlib.asynccontextmanager
async def ready(application: App) -> AsyncIterator[App]:
    """``application`` on its migrated database with the demo data, closed afterwards."""
    await application.migrate()
    await application.seed_demo()
    try:
        yield application
    finally:
        await application.close()
