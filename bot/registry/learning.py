"""What the assistant learns from the help desk: content gaps grouped for a digest, and staff labels.

A digest puts the open content gaps (questions declined, asked back about, or whose answer got a 👎) into
``gap_groups``; a staff decision on a group either labels its questions with a topic (``training_labels``,
which ``registry-bot kb train`` learns from), marks it as needing a new article, or ignores it. A label can
be undone: it is kept, with who undid it and when, and no longer trained on. Like ``repo``, these functions
never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.registry.models import Feedback, GapGroup, TrainingLabel, UnansweredQuestion


@dataclass(frozen=True, slots=True)
class Gap:
    """One stored content gap, as the digest groups it."""

    id: int
    language: str
    text: str
    kind: str  # unknown, clarify or unhelpful
    topic: str | None  # the article that got a 👎


@dataclass(frozen=True, slots=True)
class Label:
    """A staff label: ``text`` (in ``language``) belongs to ``topic`` of ``registry``."""

    id: int
    registry: str
    language: str
    text: str
    topic: str
    labelled_by: str
    labelled_at: datetime
    undone_by: str | None
    undone_at: datetime | None

    @property
    def active(self) -> bool:
        return self.undone_at is None


@dataclass(frozen=True, slots=True)
class Helpfulness:
    """How often an article answered in a language, and the 👍 and 👎 it got."""

    topic: str
    language: str
    answers: int
    helpful: int
    unhelpful: int


def _label(row: TrainingLabel) -> Label:
    return Label(
        row.id,
        row.registry_key,
        row.language,
        row.text,
        row.topic,
        row.labelled_by,
        row.labelled_at,
        row.undone_by,
        row.undone_at,
    )


async def labels(session: AsyncSession, *, registry: str | None = None, active: bool = True) -> list[Label]:
    """The labels of ``registry`` (every registry when None), oldest first; ``active`` leaves out the
    undone ones."""
    query = select(TrainingLabel).order_by(TrainingLabel.id)
    if registry is not None:
        query = query.where(TrainingLabel.registry_key == registry)
    if active:
        query = query.where(TrainingLabel.undone_at.is_(None))
    return [_label(row) for row in (await session.execute(query)).scalars()]


async def undo_label(session: AsyncSession, *, label_id: int, by: str, now: datetime) -> Label | None:
    """Undo one label (it is no longer trained on); None when there is no such active label."""
    row = await session.get(TrainingLabel, label_id)
    if row is None or row.undone_at is not None:
        return None
    row.undone_by, row.undone_at = by, now
    return _label(row)


async def open_gaps(session: AsyncSession, *, registry: str, since: datetime, limit: int) -> list[Gap]:
    """The newest ``limit`` content gaps of ``registry`` since ``since`` that staff have not decided on."""
    query = (
        select(UnansweredQuestion)
        .outerjoin(GapGroup, GapGroup.id == UnansweredQuestion.gap_group_id)
        .where(
            UnansweredQuestion.registry_key == registry,
            UnansweredQuestion.created_at >= since,
            (UnansweredQuestion.gap_group_id.is_(None)) | (GapGroup.status == "open"),
        )
        .order_by(UnansweredQuestion.id.desc())
        .limit(limit)
    )
    return [
        Gap(row.id, row.language, row.text, row.kind, row.topic)
        for row in (await session.execute(query)).scalars()
    ]


async def new_group(session: AsyncSession, *, registry: str, gap_ids: Sequence[int], now: datetime) -> int:
    """A new open group holding ``gap_ids`` (taken out of any earlier digest's group)."""
    group = GapGroup(registry_key=registry, created_at=now, status="open")
    session.add(group)
    await session.flush()
    await session.execute(
        update(UnansweredQuestion).where(UnansweredQuestion.id.in_(gap_ids)).values(gap_group_id=group.id)
    )
    return group.id


async def group_gaps(session: AsyncSession, group_id: int) -> list[Gap]:
    """The questions a group holds now (a later digest may have taken them into a group of its own)."""
    query = select(UnansweredQuestion).where(UnansweredQuestion.gap_group_id == group_id)
    return [
        Gap(row.id, row.language, row.text, row.kind, row.topic)
        for row in (await session.execute(query.order_by(UnansweredQuestion.id))).scalars()
    ]


async def group(session: AsyncSession, group_id: int) -> GapGroup | None:
    return await session.get(GapGroup, group_id)


async def decide_group(
    session: AsyncSession, *, group_id: int, status: str, topic: str | None, by: str, now: datetime
) -> GapGroup | None:
    """Record staff's decision on an open group; with ``labelled``, its questions become labels of
    ``topic``. None when the group is not open (decided already, or unknown)."""
    found = (
        await session.execute(select(GapGroup).where(GapGroup.id == group_id).with_for_update())
    ).scalar_one_or_none()
    if found is None or found.status != "open":
        return None
    found.status, found.topic, found.decided_by, found.decided_at = status, topic, by, now
    if status == "labelled" and topic is not None:
        for gap in await group_gaps(session, group_id):
            session.add(
                TrainingLabel(
                    registry_key=found.registry_key,
                    language=gap.language,
                    text=gap.text,
                    topic=topic,
                    gap_group_id=group_id,
                    labelled_by=by,
                    labelled_at=now,
                )
            )
    return found


async def reopen_group(session: AsyncSession, *, group_id: int, by: str, now: datetime) -> GapGroup | None:
    """Undo staff's decision on a group: its labels are undone and it is open again. None when it was
    not decided."""
    found = (
        await session.execute(select(GapGroup).where(GapGroup.id == group_id).with_for_update())
    ).scalar_one_or_none()
    if found is None or found.status == "open":
        return None
    await session.execute(
        update(TrainingLabel)
        .where(TrainingLabel.gap_group_id == group_id, TrainingLabel.undone_at.is_(None))
        .values(undone_by=by, undone_at=now)
    )
    found.status, found.topic, found.decided_by, found.decided_at = "open", None, None, None
    return found


async def groups_needing_articles(session: AsyncSession, *, registry: str) -> list[GapGroup]:
    """Groups staff said need a new article, oldest first."""
    query = (
        select(GapGroup)
        .where(GapGroup.registry_key == registry, GapGroup.status == "new_article")
        .order_by(GapGroup.id)
    )
    return list((await session.execute(query)).scalars())


async def helpfulness(session: AsyncSession, *, registry: str, since: datetime) -> list[Helpfulness]:
    """Per article and language since ``since``: answers given, 👍 and 👎; most answered first."""
    query = (
        select(
            Feedback.topic,
            Feedback.language,
            func.count(),
            func.count().filter(Feedback.helpful.is_(True)),
            func.count().filter(Feedback.helpful.is_(False)),
        )
        .where(
            Feedback.registry_key == registry,
            Feedback.created_at >= since,
            Feedback.topic.is_not(None),
            Feedback.rating.is_(None),
        )
        .group_by(Feedback.topic, Feedback.language)
        .order_by(func.count().desc(), Feedback.topic, Feedback.language)
    )
    return [
        Helpfulness(str(topic), str(language or ""), int(n), int(up), int(down))
        for topic, language, n, up, down in (await session.execute(query)).all()
    ]
