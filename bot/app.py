"""Composition root: builds the database, knowledge base and engine. Nothing else builds them."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Profile, Settings, load_profile
from bot.engine import Engine, utcnow
from bot.helpdesk import HelpDesk
from bot.knowledge import KnowledgeBase
from bot.learning import ContentGaps
from bot.metrics import Metrics
from bot.registry import learning, repo
from bot.registry.session import make_engine, make_sessionmaker, upgrade
from bot.understanding.model import ModelError
from bot.understanding.store import ModelStore

logger = logging.getLogger(__name__)


@functools.cache
def load_knowledge(root: Path) -> KnowledgeBase:
    """The knowledge base under ``root``, loaded and indexed once per process."""
    return KnowledgeBase.load(root)


def _database(settings: Settings) -> AsyncEngine:
    return make_engine(
        settings.database_url,
        schema=settings.database_schema,
        statement_timeout=settings.database_statement_timeout,
        lock_timeout=settings.database_lock_timeout,
    )


@contextlib.asynccontextmanager
async def labels_database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession] | None]:
    """Sessions on the configured database for the staff labels' commands, or None when it holds no
    labels yet: an SQLite file that does not exist (it is not created just to be read) or a database
    without the ``training_labels`` table. A database that cannot be reached raises (SQLAlchemy's
    ``OperationalError``, or ``OSError``)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and (
        not url.database or url.database == ":memory:" or not Path(url.database).is_file()
    ):
        yield None
        return
    database = _database(settings)
    try:
        async with database.connect() as connection:
            found = await connection.run_sync(
                lambda sync: inspect(sync).has_table("training_labels", schema=settings.database_schema)
            )
        yield make_sessionmaker(database) if found else None
    finally:
        await database.dispose()


async def staff_labels(
    settings: Settings, *, registry: str | None = None, active: bool = True
) -> list[learning.Label]:
    """The staff labels in the configured database (of ``registry``; only those not undone when
    ``active``); none when there is no such database yet (see ``labels_database``)."""
    async with labels_database(settings) as sessions:
        if sessions is None:
            return []
        async with sessions() as session:
            return await learning.labels(session, registry=registry, active=active)


async def undo_staff_label(
    settings: Settings, label_id: int, *, by: str, now: datetime
) -> learning.Label | None:
    """Undo one label in the configured database (committed); None when there is no such active label."""
    async with labels_database(settings) as sessions:
        if sessions is None:
            return None
        async with sessions() as session, session.begin():
            return await learning.undo_label(session, label_id=label_id, by=by, now=now)


@dataclass
class App:
    """The running assistant for one registry profile."""

    settings: Settings
    profile: Profile
    database: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    knowledge: KnowledgeBase
    engine: Engine
    helpdesk: HelpDesk
    metrics: Metrics
    gaps: ContentGaps

    @classmethod
    def build(
        cls, settings: Settings, *, registry: str | None = None, clock: Callable[[], datetime] = utcnow
    ) -> App:
        profile = load_profile(registry or settings.registry, settings)
        database = _database(settings)
        sessionmaker = make_sessionmaker(database)
        knowledge = load_knowledge(settings.content_dir / "knowledge")
        models = ModelStore(settings.content_dir, (profile.key,))
        if profile.key not in models:
            raise ModelError(f"no topic model for {profile.key!r}; run: registry-bot kb train")
        metrics = Metrics()
        engine = Engine(
            settings=settings,
            profile=profile,
            database=database,
            knowledge=knowledge,
            models=models,
            clock=clock,
            metrics=metrics,
        )
        helpdesk = HelpDesk(settings=settings, profile=profile, sessionmaker=sessionmaker, clock=clock)
        gaps = ContentGaps(
            settings=settings,
            profile=profile,
            sessionmaker=sessionmaker,
            knowledge=knowledge,
            models=models,
            clock=clock,
        )
        return cls(settings, profile, database, sessionmaker, knowledge, engine, helpdesk, metrics, gaps)

    async def migrate(self) -> None:
        await upgrade(self.database)

    async def seed_demo(self) -> dict[str, int]:
        """Load the demo data (idempotent) in the registry's time zone."""
        async with self.sessionmaker() as session, session.begin():
            return await repo.seed_demo(
                session, path=self.settings.demo_data, timezone=self.profile.timezone, now=self.engine.clock()
            )

    async def purge(self) -> dict[str, int]:
        """Delete personal data older than the configured retention (``registry-bot purge``)."""
        now, settings = self.engine.clock(), self.settings
        async with self.sessionmaker() as session, session.begin():
            return await repo.purge(
                session,
                now=now,
                transcripts_before=now - timedelta(days=settings.transcript_retention_days),
                codes_before=now - timedelta(hours=settings.code_retention_hours),
                deliveries_before=now - timedelta(days=settings.delivery_retention_days),
                sent_mail_before=now - timedelta(days=settings.sent_mail_retention_days),
                uploads_before=now - timedelta(days=settings.abandoned_upload_days),
            )

    async def close(self) -> None:
        await self.engine.close()
        await self.database.dispose()
