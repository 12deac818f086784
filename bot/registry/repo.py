"""Repository functions: the only way the engine and flows read and write the registry database.

Every function takes an open ``AsyncSession`` and never commits: the engine commits a whole turn (state,
transcript and whatever a flow wrote) in one transaction.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.registry.models import (
    AuditRequest,
    ChatLink,
    Conversation,
    Enrollment,
    Escalation,
    Member,
    ProcessedUpdate,
    Sponsor,
    Training,
    TranscriptEntry,
    UnansweredQuestion,
)

logger = logging.getLogger(__name__)

DECISION_DAYS = 28  # "a decision within four (4) weeks"


async def claim_delivery(session: AsyncSession, *, channel: str, delivery_id: str, now: datetime) -> bool:
    """Record a delivery id; False when it was processed before (a redelivery to ignore)."""
    if await session.get(ProcessedUpdate, (channel, delivery_id)) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(ProcessedUpdate(channel=channel, delivery_id=delivery_id, processed_at=now))
    except IntegrityError:
        return False
    return True


async def load_conversation(
    session: AsyncSession, *, channel: str, user_id: str, registry: str, language: str, now: datetime
) -> Conversation:
    """The member's conversation on this channel, locked for this turn (created on first contact)."""
    query = (
        select(Conversation)
        .where(Conversation.channel == channel, Conversation.user_id == user_id)
        .with_for_update()
    )
    conversation = (await session.execute(query)).scalar_one_or_none()
    if conversation is not None:
        return conversation
    conversation = Conversation(
        channel=channel,
        user_id=user_id,
        registry_key=registry,
        language=language,
        state={},
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(conversation)
    except IntegrityError:  # created meanwhile by another process: take theirs
        return (await session.execute(query)).scalar_one()
    return conversation


def add_transcript(
    session: AsyncSession, conversation: Conversation, *, direction: str, text: str, now: datetime
) -> None:
    session.add(
        TranscriptEntry(conversation_id=conversation.id, direction=direction, text=text, created_at=now)
    )


async def recent_transcript(
    session: AsyncSession, conversation_id: int, limit: int = 10
) -> list[TranscriptEntry]:
    query = (
        select(TranscriptEntry)
        .where(TranscriptEntry.conversation_id == conversation_id)
        .order_by(TranscriptEntry.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.execute(query)).scalars().all()))


def record_unanswered(
    session: AsyncSession, *, conversation_id: int, registry: str, text: str, language: str, now: datetime
) -> None:
    """Keep a question no article answered: the content gaps staff review."""
    session.add(
        UnansweredQuestion(
            conversation_id=conversation_id,
            registry_key=registry,
            language=language,
            text=text,
            created_at=now,
        )
    )


async def linked_member(session: AsyncSession, *, channel: str, user_id: str) -> Member | None:
    """The member this chat account was verified as, or None."""
    query = (
        select(Member)
        .join(ChatLink, ChatLink.member_id == Member.id)
        .where(ChatLink.channel == channel, ChatLink.user_id == user_id)
    )
    return (await session.execute(query)).scalar_one_or_none()


# --- demo data -------------------------------------------------------------------------------------


def _local(now: datetime, tz: ZoneInfo, days: int, at: str = "00:00") -> datetime:
    day = now.astimezone(tz).date() + timedelta(days=days)
    return datetime.combine(day, time.fromisoformat(at), tzinfo=tz)


async def seed_demo(session: AsyncSession, *, path: Path, timezone: str, now: datetime) -> dict[str, int]:
    """Load demo members, sponsors, trainings, enrollments and audits; rows already there are kept.

    Relative dates (``starts_in_days``, ``submitted_days_ago``) are resolved in the registry's time zone.
    Returns how many rows of each kind were added (all zero on a second run).
    """
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    tz = ZoneInfo(timezone)
    registry = data.get("registry", "ca")
    added = {"members": 0, "sponsors": 0, "trainings": 0, "enrollments": 0, "audit_requests": 0}

    members: dict[str, Member] = {}
    for item in data.get("members", []):
        query = select(Member).where(
            Member.registry_key == registry, Member.registry_id == item["registry_id"]
        )
        member = (await session.execute(query)).scalar_one_or_none()
        if member is None:
            member = Member(registry_key=registry, **item)
            session.add(member)
            added["members"] += 1
        members[item["registry_id"]] = member

    sponsors: dict[str, Sponsor] = {}
    for item in data.get("sponsors", []):
        sponsor = (
            await session.execute(select(Sponsor).where(Sponsor.key == item["key"]))
        ).scalar_one_or_none()
        if sponsor is None:
            sponsor = Sponsor(**item)
            session.add(sponsor)
            added["sponsors"] += 1
        sponsors[item["key"]] = sponsor
    await session.flush()

    trainings: dict[str, Training] = {}
    for item in data.get("trainings", []):
        found = select(Training).where(Training.key == item["key"])
        training = (await session.execute(found)).scalar_one_or_none()
        if training is None:
            training = Training(
                key=item["key"],
                sponsor_id=sponsors[item["sponsor"]].id,
                title=item["title"],
                starts_at=_local(now, tz, item["starts_in_days"], item.get("starts_at", "09:00")),
                hours=item.get("hours", 0),
                language=item.get("language", "en"),
                location=item.get("location", ""),
            )
            session.add(training)
            added["trainings"] += 1
        trainings[item["key"]] = training
    await session.flush()

    for item in data.get("enrollments", []):
        enrollee, course = members[item["member"]], trainings[item["training"]]
        existing = select(Enrollment).where(
            Enrollment.member_id == enrollee.id, Enrollment.training_id == course.id
        )
        if (await session.execute(existing)).scalar_one_or_none() is None:
            session.add(Enrollment(member_id=enrollee.id, training_id=course.id, status=item["status"]))
            added["enrollments"] += 1

    for item in data.get("audit_requests", []):
        audit = select(AuditRequest).where(AuditRequest.reference == item["reference"])
        if (await session.execute(audit)).scalar_one_or_none() is not None:
            continue
        submitted = now - timedelta(days=item.get("submitted_days_ago", 0))
        decided_ago = item.get("decided_days_ago")
        session.add(
            AuditRequest(
                reference=item["reference"],
                member_id=members[item["member"]].id,
                category=item["category"],
                description=item["description"],
                involves_coursework=item.get("involves_coursework", False),
                status=item["status"],
                channel="demo",
                submitted_at=submitted,
                due_at=submitted + timedelta(days=DECISION_DAYS),
                decided_at=None if decided_ago is None else now - timedelta(days=decided_ago),
                decided_by=None if decided_ago is None else "Registry Operations Team",
                decision_note=item.get("decision_note"),
            )
        )
        added["audit_requests"] += 1
    await session.flush()
    return added


async def unlink(session: AsyncSession, *, channel: str, user_id: str) -> bool:
    """Forget that this chat account is a member; True when it was linked."""
    query = select(ChatLink).where(ChatLink.channel == channel, ChatLink.user_id == user_id)
    link = (await session.execute(query)).scalar_one_or_none()
    if link is None:
        return False
    await session.delete(link)
    return True


async def open_escalation(
    session: AsyncSession,
    *,
    conversation_id: int,
    member_id: int | None,
    registry: str,
    language: str,
    question: str,
    after_hours: bool,
    now: datetime,
) -> Escalation:
    """Write an escalation for staff; the turn's transaction commits it with the reply."""
    escalation = Escalation(
        conversation_id=conversation_id,
        member_id=member_id,
        registry_key=registry,
        language=language,
        question=question,
        status="open",
        after_hours=after_hours,
        created_at=now,
    )
    session.add(escalation)
    await session.flush()
    return escalation
