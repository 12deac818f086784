"""Composition root: builds the database, knowledge base and engine. Nothing else builds them."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Profile, Settings, load_profile
from bot.engine import Engine, utcnow
from bot.knowledge import KnowledgeBase
from bot.knowledge import load_knowledge as load_knowledge  # where it was first (tests, the bench)
from bot.metrics import Metrics
from bot.registry import repo
from bot.registry.models import AuditRequest, Enrollment, Member, Sponsor, Training
from bot.registry.session import MIGRATIONS_DIR, make_engine, make_sessionmaker, upgrade
from bot.understanding.model import ModelError
from bot.understanding.store import ModelStore

if TYPE_CHECKING:  # built on first use: a chat in the terminal needs neither
    from bot.helpdesk import HelpDesk
    from bot.learning import ContentGaps
    from bot.registry import learning

logger = logging.getLogger(__name__)


def _database(settings: Settings) -> AsyncEngine:
    return make_engine(
        settings.database_url,
        schema=settings.database_schema,
        statement_timeout=settings.database_statement_timeout,
        lock_timeout=settings.database_lock_timeout,
    )


# ``revision: str = "0007"``, ``down_revision: str | None = "0006"`` (or a tuple of them) in a migration
_REVISION_LINE = re.compile(r"^(down_)?revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


def head_revisions(versions: Path = MIGRATIONS_DIR / "versions") -> frozenset[str]:
    """The revisions no migration builds on (Alembic's heads), read from the migration files as text:
    knowing them costs no import of Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        for down, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).update(_QUOTED.findall(value))
    return frozenset(revisions - parents)


async def at_head(database: AsyncEngine) -> bool:
    """Whether the schema is at the migrations' head already: one query (False on a new database)."""
    async with database.connect() as connection:
        try:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:  # no alembic_version table: nothing migrated yet
            return False
        current = frozenset(str(version) for version in result.scalars())
    return current == head_revisions()


# what ``repo.seed_demo`` loads, in the order it counts them
DEMO_KINDS = ("members", "sponsors", "trainings", "enrollments", "audit_requests")


async def demo_loaded(session: AsyncSession, path: Path) -> bool:
    """Whether every row of the demo data at ``path`` is in the database already, each known by what
    ``repo.seed_demo`` knows it by (so seeding would add nothing): a Core query per kind of row, where
    seeding makes an ORM query per row. A file with other kinds of rows is never taken as loaded."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if set(data) - {"about", "registry", *DEMO_KINDS}:
        return False
    items: dict[str, list[dict[str, Any]]] = {kind: data.get(kind, []) for kind in DEMO_KINDS}
    members, sponsors, trainings, enrollments, audits = (
        model.__table__.c for model in (Member, Sponsor, Training, Enrollment, AuditRequest)
    )
    ids = [item["registry_id"] for item in items["members"]]
    registry_members = (members.registry == data.get("registry", "ca"), members.registry_id.in_(ids))
    sponsor_keys = [item["key"] for item in items["sponsors"]]
    training_keys = [item["key"] for item in items["trainings"]]
    references = [item["reference"] for item in items["audit_requests"]]
    wanted: list[tuple[set[Any], Any]] = [
        (set(ids), select(members.registry_id).where(*registry_members)),
        (set(sponsor_keys), select(sponsors.key).where(sponsors.key.in_(sponsor_keys))),
        (set(training_keys), select(trainings.key).where(trainings.key.in_(training_keys))),
        (
            {(item["member"], item["training"]) for item in items["enrollments"]},
            select(members.registry_id, trainings.key).where(
                enrollments.member_id == members.id,
                enrollments.training_id == trainings.id,
                *registry_members,
            ),
        ),
        (set(references), select(audits.reference).where(audits.reference.in_(references))),
    ]
    for keys, query in wanted:
        if keys:
            found = {row[0] if len(row) == 1 else tuple(row) for row in await session.execute(query)}
            if not keys <= found:
                return False
    return True


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
    from bot.registry import learning

    async with labels_database(settings) as sessions:
        if sessions is None:
            return []
        async with sessions() as session:
            return await learning.labels(session, registry=registry, active=active)


async def undo_staff_label(
    settings: Settings, label_id: int, *, by: str, now: datetime
) -> learning.Label | None:
    """Undo one label in the configured database (committed); None when there is no such active label."""
    from bot.registry import learning

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
    models: ModelStore
    engine: Engine
    metrics: Metrics
    clock: Callable[[], datetime]

    @functools.cached_property
    def helpdesk(self) -> HelpDesk:
        """The help desk's side (Slack): claims, replies, decisions."""
        from bot.helpdesk import HelpDesk

        return HelpDesk(
            settings=self.settings, profile=self.profile, sessionmaker=self.sessionmaker, clock=self.clock
        )

    @functools.cached_property
    def gaps(self) -> ContentGaps:
        """The content-gap digest and staff's decisions on it."""
        from bot.learning import ContentGaps

        return ContentGaps(
            settings=self.settings,
            profile=self.profile,
            sessionmaker=self.sessionmaker,
            knowledge=self.knowledge,
            models=self.models,
            clock=self.clock,
        )

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
        return cls(settings, profile, database, sessionmaker, knowledge, models, engine, metrics, clock)

    async def migrate(self) -> None:
        """Create or upgrade the schema to the migrations' head. A database there already costs one query:
        Alembic's environment (its scripts, every migration) is loaded only for an upgrade."""
        if not await at_head(self.database):
            await upgrade(self.database)

    async def seed_demo(self) -> dict[str, int]:
        """Load the demo data (idempotent) in the registry's time zone; how many rows of each kind were
        added. A database that has them all already is told so in a query per kind."""
        async with self.sessionmaker() as session, session.begin():
            if await demo_loaded(session, self.settings.demo_data):
                return dict.fromkeys(DEMO_KINDS, 0)
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
