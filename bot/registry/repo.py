"""Repository functions: the only way the engine and flows read and write the registry database.

Every function takes an open ``AsyncSession`` (the per-turn ones also the turn's ``AsyncConnection``: a
``Database``) and never commits: the engine commits a whole turn (state, transcript and whatever a flow
wrote) in one transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Executable, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.registry.models import (
    Appeal,
    AuditRequest,
    Base,
    ChatLink,
    Conversation,
    Document,
    Enrollment,
    Escalation,
    Feedback,
    Member,
    OutboxMessage,
    ProcessedUpdate,
    RateLimit,
    Sponsor,
    Training,
    TranscriptEntry,
    UnansweredQuestion,
    VerificationCode,
)

logger = logging.getLogger(__name__)
#: what the per-turn functions run on: the turn's connection (Core), or a session (help desk, flows)
Database = AsyncConnection | AsyncSession
RequestRow = TypeVar("RequestRow", AuditRequest, Appeal)

DECISION_DAYS = 28  # "a decision within four (4) weeks"


# Core tables for the statements every turn runs (no ORM object to flush)
_CONVERSATIONS = Base.metadata.tables[Conversation.__tablename__]
_TRANSCRIPTS = Base.metadata.tables[TranscriptEntry.__tablename__]
# Statements every turn runs are built once (building one costs more than running it), with bound values.
# The conversation and, in the same round trip, the member its chat account is linked to (if any).
_CHAT_LINKS = Base.metadata.tables[ChatLink.__tablename__]
_MEMBERS = Base.metadata.tables[Member.__tablename__]
_MEMBER_COLUMNS = [_MEMBERS.c[name] for name in ("id", "registry_id", "first_name", "last_name", "email")]
_CONVERSATION_AND_MEMBER = (
    select(_CONVERSATIONS.c.id, _CONVERSATIONS.c.state, *_MEMBER_COLUMNS)
    .select_from(_CONVERSATIONS)
    .outerjoin(
        _CHAT_LINKS,
        (_CHAT_LINKS.c.channel == _CONVERSATIONS.c.channel)
        & (_CHAT_LINKS.c.user_id == _CONVERSATIONS.c.user_id),
    )
    .outerjoin(_MEMBERS, _MEMBERS.c.id == _CHAT_LINKS.c.member_id)
    .where(_CONVERSATIONS.c.channel == bindparam("channel"), _CONVERSATIONS.c.user_id == bindparam("user_id"))
    .with_for_update(of=_CONVERSATIONS)
)
_SAVE_CONVERSATION = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("conversation_id"))
    .values(state=bindparam("state"), language=bindparam("language"), updated_at=bindparam("updated_at"))
)
_INSERT_TRANSCRIPT = insert(_TRANSCRIPTS)
_INSERT_TRANSCRIPT_RETURNING_ID = _INSERT_TRANSCRIPT.returning(_TRANSCRIPTS.c.id)
_INSERT_UNANSWERED = insert(Base.metadata.tables[UnansweredQuestion.__tablename__])
_FEEDBACK = Base.metadata.tables[Feedback.__tablename__]
_INSERT_ANSWER = insert(_FEEDBACK).returning(_FEEDBACK.c.id)
_ANSWER_HELPED = (
    update(_FEEDBACK)
    .where(
        _FEEDBACK.c.id == bindparam("feedback_id"),
        _FEEDBACK.c.conversation_id == bindparam("of_conversation"),
        _FEEDBACK.c.helpful.is_(None),
        _FEEDBACK.c.topic.is_not(None),
        _FEEDBACK.c.rating.is_(None),
    )
    .values(helpful=bindparam("said"))
    .returning(_FEEDBACK.c.topic, _FEEDBACK.c.language, _FEEDBACK.c.question)
)
_LINKED_MEMBER = (
    select(*_MEMBER_COLUMNS)
    .join(_CHAT_LINKS, _CHAT_LINKS.c.member_id == _MEMBERS.c.id)
    .where(_CHAT_LINKS.c.channel == bindparam("channel"), _CHAT_LINKS.c.user_id == bindparam("user_id"))
)

_MEMBER_BY_REGISTRY_ID = select(Member).where(
    Member.registry_key == bindparam("registry"), Member.registry_id == bindparam("registry_id")
)
_LATEST_CODE = (
    select(VerificationCode)
    .where(VerificationCode.channel == bindparam("channel"), VerificationCode.user_id == bindparam("user_id"))
    .order_by(VerificationCode.id.desc())
    .limit(1)
)
_SUBJECT_CODES = select(VerificationCode).where(
    VerificationCode.subject == bindparam("subject"), VerificationCode.created_at >= bindparam("since")
)
_CODES_SINCE = select(VerificationCode).where(
    VerificationCode.channel == bindparam("channel"),
    VerificationCode.user_id == bindparam("user_id"),
    VerificationCode.created_at >= bindparam("since"),
)
_UPCOMING = (
    select(Enrollment)
    .join(Training, Enrollment.training_id == Training.id)
    .where(
        Enrollment.member_id == bindparam("member_id"),
        Enrollment.status == "enrolled",
        Training.starts_at > bindparam("now"),
    )
    .order_by(Training.starts_at)
)
_ENROLLMENT_OF = select(Enrollment).where(
    Enrollment.id == bindparam("enrollment_id"), Enrollment.member_id == bindparam("member_id")
)


@functools.cache
def _insert_ignoring_conflicts(dialect: str, table: str, returning: str | None = None) -> Executable:
    """``INSERT ... ON CONFLICT DO NOTHING`` (optionally ``RETURNING`` a column) for SQLite or PostgreSQL."""
    make_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    target = Base.metadata.tables[table]
    statement = make_insert(target).on_conflict_do_nothing()
    return statement.returning(target.c[returning]) if returning else statement


def _dialect(db: Database) -> str:
    return db.dialect.name if isinstance(db, AsyncConnection) else db.get_bind().dialect.name


async def claim_delivery(db: Database, *, channel: str, delivery_id: str, now: datetime) -> bool:
    """Record a delivery id; False when it was processed before (a redelivery to ignore).

    One ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent claim of the same id waits for the first
    transaction, then inserts nothing.
    """
    values = {"channel": channel, "delivery_id": delivery_id, "processed_at": now}
    result = await db.execute(_insert_ignoring_conflicts(_dialect(db), ProcessedUpdate.__tablename__), values)
    return bool(getattr(result, "rowcount", 0))


_PROCESSED = Base.metadata.tables[ProcessedUpdate.__tablename__]
_DELIVERY = (_PROCESSED.c.channel == bindparam("b_channel")) & (
    _PROCESSED.c.delivery_id == bindparam("b_delivery_id")
)
_STORED_REPLIES = select(_PROCESSED.c.replies).where(_DELIVERY)
_KEEP_REPLIES = update(_PROCESSED).where(_DELIVERY).values(replies=bindparam("b_replies"))
_RATE_LIMITS = Base.metadata.tables[RateLimit.__tablename__]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def stored_replies(db: Database, *, channel: str, delivery_id: str) -> str | None:
    """The replies (JSON) kept for a delivery already handled, or None."""
    found = await db.execute(_STORED_REPLIES, {"b_channel": channel, "b_delivery_id": delivery_id})
    return found.scalar_one_or_none()


@functools.cache
def _count_hit(dialect: str) -> Executable:
    make_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = make_insert(_RATE_LIMITS)
    return statement.on_conflict_do_update(
        index_elements=[_RATE_LIMITS.c.key, _RATE_LIMITS.c.window_start],
        set_={"hits": _RATE_LIMITS.c.hits + 1},
    ).returning(_RATE_LIMITS.c.hits)


async def count_hit(
    db: Database, *, kind: str, value: str, window: timedelta, now: datetime
) -> tuple[int, datetime]:
    """Count one more use of ``value`` (a client address, an e-mail address: stored only as a digest) for
    ``kind`` in the current window of ``window`` (fixed windows, aligned on a fixed epoch): how many there
    have been in it, this one included, and when the window ends.

    One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, so every process counts in the same row.
    """
    values, ends = hit_row(kind=kind, value=value, window=window, now=now)
    hits = (await db.execute(_count_hit(_dialect(db)), values)).scalar_one()
    return int(hits), ends


def hit_row(*, kind: str, value: str, window: timedelta, now: datetime) -> tuple[dict[str, Any], datetime]:
    """The ``rate_limits`` row one use of ``value`` counts in (``count_hit``), and when its window ends."""
    start = _EPOCH + ((now - _EPOCH) // window) * window
    key = f"{kind}:{int(window.total_seconds())}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"
    return {"key": key, "window_start": start, "hits": 1}, start + window


async def over_limit(
    db: Database, *, kind: str, value: str, limits: Sequence[tuple[int, timedelta]], now: datetime
) -> datetime | None:
    """Count one more use and check it against each ``(at most, per window)``: None when it is within all
    of them, else when the first one it passes lets it happen again."""
    for most, window in limits:
        hits, ends = await count_hit(db, kind=kind, value=value, window=window, now=now)
        if hits > most:
            return ends
    return None


_PROBE_CONVERSATIONS = (
    select(_CONVERSATIONS.c.id).limit(1).with_for_update(skip_locked=True)  # waits only for table locks
)
_PROBE_DELIVERY = insert(_PROCESSED).values(channel="health", delivery_id=bindparam("b_probe"))


async def probe_writes(connection: AsyncConnection, *, now: datetime) -> None:
    """What every turn does to start, in the caller's transaction (to be rolled back): lock a conversation
    and claim a delivery. A held table lock or a stalled server makes it wait, as it would make turns."""
    await connection.execute(_PROBE_CONVERSATIONS)
    await connection.execute(_PROBE_DELIVERY, {"b_probe": f"probe-{now.timestamp()}", "processed_at": now})


@dataclass(frozen=True, slots=True)
class VerifiedMember:
    """The member a chat account is verified as, as a turn sees them (read-only: flows change members
    only through repository functions)."""

    id: int
    registry_id: str
    first_name: str
    last_name: str
    email: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> VerifiedMember | None:
        """From the member columns of ``_MEMBER_COLUMNS``; None when the outer join found no member."""
        return None if row[0] is None else cls(*row)


@dataclass
class ConversationState:
    """A conversation as a turn needs it: its id and its saved state (a fresh dict the turn may change)."""

    id: int
    state: dict[str, Any]


async def conversation_language(db: Database, *, channel: str, user_id: str) -> str | None:
    """The language a chat user's conversation is in, or None before their first message."""
    query = select(_CONVERSATIONS.c.language).where(
        _CONVERSATIONS.c.channel == channel, _CONVERSATIONS.c.user_id == user_id
    )
    return (await db.execute(query)).scalar_one_or_none()


async def add_transcript_entry(
    db: Database, *, conversation_id: int, direction: str, text: str, now: datetime
) -> int:
    """Append one transcript entry and return its id (for whoever relays it afterwards)."""
    values = {"conversation_id": conversation_id, "direction": direction, "text": text, "created_at": now}
    return int((await db.execute(_INSERT_TRANSCRIPT_RETURNING_ID, values)).scalar_one())


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


_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_NUMBER_IN_TEXT = re.compile(r"\+?\(?\d[\d\s().\-]*\d")
_MIN_PERSONAL_DIGITS = 5  # a Registry ID, a code, a phone number; "2024" or "40 hours" stay


def mask_personal(text: str) -> str:
    """``text`` with e-mail addresses and long numbers (IDs, codes, phone numbers) replaced by a mark."""
    text = _EMAIL_IN_TEXT.sub("[e-mail]", text)

    def number(match: re.Match[str]) -> str:
        digits = sum(character.isdigit() for character in match[0])
        return "[number]" if digits >= _MIN_PERSONAL_DIGITS else match[0]

    return _NUMBER_IN_TEXT.sub(number, text)


@dataclass(frozen=True, slots=True)
class AnswerGiven:
    """An answer the member said helped or not."""

    topic: str
    language: str
    question: str


async def answer_helped(
    db: Database, *, feedback_id: int, conversation_id: int, helpful: bool
) -> AnswerGiven | None:
    """Write the member's 👍 or 👎 to an answer of their conversation, once; None when it is not theirs or
    was already said."""
    row = (
        await db.execute(
            _ANSWER_HELPED,
            {"feedback_id": feedback_id, "of_conversation": conversation_id, "said": helpful},
        )
    ).one_or_none()
    return None if row is None else AnswerGiven(str(row[0]), str(row[1] or ""), str(row[2] or ""))


async def linked_member(session: AsyncSession, *, channel: str, user_id: str) -> VerifiedMember | None:
    """The member this chat account was verified as, or None."""
    chat = {"channel": channel, "user_id": user_id}
    found = (await session.execute(_LINKED_MEMBER, chat)).one_or_none()
    return None if found is None else VerifiedMember.from_row(found)


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


# --- members and identity -------------------------------------------------------------------------------


async def member_by_registry_id(session: AsyncSession, *, registry: str, registry_id: str) -> Member | None:
    values = {"registry": registry, "registry_id": registry_id}
    return (await session.execute(_MEMBER_BY_REGISTRY_ID, values)).scalar_one_or_none()


async def members_by_email(session: AsyncSession, *, registry: str, email: str) -> list[Member]:
    query = select(Member).where(Member.registry_key == registry, func.lower(Member.email) == email.lower())
    return list((await session.execute(query)).scalars().all())


async def add_code(
    session: AsyncSession,
    *,
    channel: str,
    user_id: str,
    member_id: int | None,
    code_hash: str,
    now: datetime,
    ttl: timedelta,
    subject: str | None = None,
) -> VerificationCode:
    """Store a one-time code (hashed). ``member_id`` is None when the details matched nobody; ``subject``
    is what the member's limits are counted on (see ``flows.link.subject``)."""
    code = VerificationCode(
        channel=channel,
        user_id=user_id,
        member_id=member_id,
        code_hash=code_hash,
        created_at=now,
        expires_at=now + ttl,
        attempts=0,
        subject=subject,
    )
    session.add(code)
    await session.flush()
    return code


async def latest_code(session: AsyncSession, *, channel: str, user_id: str) -> VerificationCode | None:
    chat = {"channel": channel, "user_id": user_id}
    return (await session.execute(_LATEST_CODE, chat)).scalar_one_or_none()


async def codes_for_subject(
    session: AsyncSession, *, subject: str, since: datetime
) -> list[VerificationCode]:
    """The codes asked for this subject (a Registry ID, in any chat) since ``since``."""
    values = {"subject": subject, "since": since}
    return list((await session.execute(_SUBJECT_CODES, values)).scalars().all())


async def codes_since(
    session: AsyncSession, *, channel: str, user_id: str, since: datetime
) -> list[VerificationCode]:
    values = {"channel": channel, "user_id": user_id, "since": since}
    return list((await session.execute(_CODES_SINCE, values)).scalars().all())


async def link_chat(
    session: AsyncSession, *, channel: str, user_id: str, member_id: int, now: datetime
) -> None:
    """Link this chat account to the member (replacing an earlier link)."""
    await unlink(session, channel=channel, user_id=user_id)
    await session.flush()
    session.add(ChatLink(channel=channel, user_id=user_id, member_id=member_id, linked_at=now))
    await session.flush()


# --- trainings ------------------------------------------------------------------------------------------


async def upcoming_enrollments(session: AsyncSession, *, member_id: int, now: datetime) -> list[Enrollment]:
    """The member's enrollments still ``enrolled`` in trainings that have not started, soonest first."""
    values = {"member_id": member_id, "now": now}
    return list((await session.execute(_UPCOMING, values)).unique().scalars().all())


async def enrollment_of(session: AsyncSession, *, member_id: int, enrollment_id: int) -> Enrollment | None:
    values = {"enrollment_id": enrollment_id, "member_id": member_id}
    return (await session.execute(_ENROLLMENT_OF, values)).unique().scalar_one_or_none()


async def withdraw(session: AsyncSession, *, enrollment_id: int, channel: str, now: datetime) -> bool:
    """Mark the enrollment withdrawn; False when it was no longer ``enrolled`` (nothing changed)."""
    result = await session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.status == "enrolled")
        .values(status="withdrawn", withdrawn_at=now, withdrawn_via=channel)
    )
    return bool(getattr(result, "rowcount", 0))


# --- audits, appeals and their documents ------------------------------------------------------------------


async def _next_reference(session: AsyncSession, model: type[AuditRequest | Appeal], prefix: str) -> str:
    pattern = f"{prefix}-%"
    query = select(func.max(model.reference)).where(model.reference.like(pattern))
    latest = (await session.execute(query)).scalar_one_or_none()
    number = int(latest.rsplit("-", 1)[1]) + 1 if latest else 1
    return f"{prefix}-{number:05d}"


async def add_pending_document(
    session: AsyncSession,
    *,
    conversation_id: int,
    filename: str,
    content_type: str,
    content: bytes,
    sha256: str,
    now: datetime,
) -> Document:
    document = Document(
        conversation_id=conversation_id,
        filename=filename,
        content_type=content_type,
        size=len(content),
        sha256=sha256,
        content=content,
        uploaded_at=now,
    )
    session.add(document)
    await session.flush()
    return document


async def pending_documents(session: AsyncSession, *, conversation_id: int) -> list[Document]:
    query = (
        select(Document)
        .where(
            Document.conversation_id == conversation_id,
            Document.audit_request_id.is_(None),
            Document.appeal_id.is_(None),
        )
        .order_by(Document.id)
    )
    return list((await session.execute(query)).scalars().all())


async def discard_pending_documents(session: AsyncSession, *, conversation_id: int) -> None:
    await session.execute(
        delete(Document).where(
            Document.conversation_id == conversation_id,
            Document.audit_request_id.is_(None),
            Document.appeal_id.is_(None),
        )
    )


async def _insert_numbered(
    session: AsyncSession, model: type[RequestRow], prefix: str, build: Callable[[str], RequestRow]
) -> RequestRow:
    """Insert the row ``build(reference)`` under the next free ``<prefix>-NNNNN`` reference.

    On PostgreSQL concurrent filings take their numbers one after another: a transaction-scoped advisory
    lock per prefix, held until the turn commits. Without it, every waiting request read the same highest
    number, all but one failed on the unique reference, and under load some ran out of retries.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(prefix.encode()).digest()[:8], "big", signed=True)
        await session.execute(select(func.pg_advisory_xact_lock(key)))
    for _ in range(5):
        row = build(await _next_reference(session, model, prefix))
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another request took the number meanwhile
            continue
        return row
    raise RuntimeError(f"could not allocate a {prefix} reference")


async def create_audit_request(
    session: AsyncSession,
    *,
    member_id: int,
    category: str,
    description: str,
    involves_coursework: bool,
    channel: str,
    conversation_id: int,
    now: datetime,
) -> AuditRequest:
    """Write a submitted audit request (reference ``AUD-<year>-NNNNN``) and attach the pending documents."""
    audit = await _insert_numbered(
        session,
        AuditRequest,
        f"AUD-{now.year}",
        lambda reference: AuditRequest(
            reference=reference,
            member_id=member_id,
            category=category,
            description=description,
            involves_coursework=involves_coursework,
            status="submitted",
            channel=channel,
            submitted_at=now,
            due_at=now + timedelta(days=DECISION_DAYS),
        ),
    )
    await _attach(session, conversation_id=conversation_id, audit_request_id=audit.id)
    return audit


async def create_appeal(
    session: AsyncSession,
    *,
    member_id: int,
    audit_request_id: int,
    reason: str,
    channel: str,
    conversation_id: int,
    now: datetime,
) -> Appeal:
    """Write a submitted appeal (reference ``APL-<year>-NNNNN``) and attach the pending documents."""
    appeal = await _insert_numbered(
        session,
        Appeal,
        f"APL-{now.year}",
        lambda reference: Appeal(
            reference=reference,
            member_id=member_id,
            audit_request_id=audit_request_id,
            reason=reason,
            status="submitted",
            channel=channel,
            submitted_at=now,
            due_at=now + timedelta(days=DECISION_DAYS),
        ),
    )
    await _attach(session, conversation_id=conversation_id, appeal_id=appeal.id)
    return appeal


async def _attach(
    session: AsyncSession,
    *,
    conversation_id: int,
    audit_request_id: int | None = None,
    appeal_id: int | None = None,
) -> None:
    await session.execute(
        update(Document)
        .where(
            Document.conversation_id == conversation_id,
            Document.audit_request_id.is_(None),
            Document.appeal_id.is_(None),
        )
        .values(audit_request_id=audit_request_id, appeal_id=appeal_id)
    )


async def audit_requests_of(session: AsyncSession, *, member_id: int) -> list[AuditRequest]:
    query = (
        select(AuditRequest).where(AuditRequest.member_id == member_id).order_by(AuditRequest.submitted_at)
    )
    return list((await session.execute(query)).scalars().all())


async def appeals_of(session: AsyncSession, *, member_id: int) -> list[Appeal]:
    query = select(Appeal).where(Appeal.member_id == member_id).order_by(Appeal.submitted_at)
    return list((await session.execute(query)).scalars().all())


async def appealable_audits(session: AsyncSession, *, member_id: int) -> list[AuditRequest]:
    """The member's denied audits that have no appeal yet."""
    appealed = select(Appeal.audit_request_id).where(Appeal.member_id == member_id)
    query = (
        select(AuditRequest)
        .where(
            AuditRequest.member_id == member_id,
            AuditRequest.status == "denied",
            AuditRequest.id.not_in(appealed),
        )
        .order_by(AuditRequest.submitted_at)
    )
    return list((await session.execute(query)).scalars().all())


# --- e-mail ---------------------------------------------------------------------------------------------


def enqueue_email(session: AsyncSession, *, recipient: str, subject: str, body: str, now: datetime) -> None:
    """Put an e-mail in the outbox; the delivery worker sends it (the turn's transaction commits it)."""
    session.add(
        OutboxMessage(
            recipient=recipient, subject=subject, body=body, created_at=now, attempts=0, next_attempt_at=now
        )
    )


# --- help desk staff ---------------------------------------------------------------------------------------

OPEN_ESCALATION = ("open", "claimed")
UNDECIDED = ("submitted", "under_review")


async def escalation_by_id(session: AsyncSession, escalation_id: int) -> Escalation | None:
    return await session.get(Escalation, escalation_id)


async def open_escalations(session: AsyncSession, *, registry: str) -> list[Escalation]:
    """Escalations waiting for staff or being handled, oldest first."""
    query = (
        select(Escalation)
        .where(Escalation.registry_key == registry, Escalation.status.in_(OPEN_ESCALATION))
        .order_by(Escalation.created_at, Escalation.id)
    )
    return list((await session.execute(query)).scalars().all())


async def escalation_is_open(db: Database, escalation_id: int) -> bool:
    query = select(Escalation.status).where(Escalation.id == escalation_id)
    return (await db.execute(query)).scalar_one_or_none() in OPEN_ESCALATION


async def claim_escalation(session: AsyncSession, *, escalation_id: int, staff: str, now: datetime) -> bool:
    """Give an open escalation to ``staff``; False when someone has it already or it is closed."""
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.status == "open")
        .values(status="claimed", claimed_by=staff, claimed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def resolve_escalation(session: AsyncSession, *, escalation_id: int, now: datetime) -> bool:
    """Close an escalation; False when it was closed already (a second click changes nothing)."""
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.status.in_(OPEN_ESCALATION))
        .values(status="resolved", resolved_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def rate_escalation(
    session: AsyncSession, *, escalation_id: int, conversation_id: int, rating: int, now: datetime
) -> bool:
    """Store the member's rating of a resolved escalation of theirs, once."""
    result = await session.execute(
        update(Escalation)
        .where(
            Escalation.id == escalation_id,
            Escalation.conversation_id == conversation_id,
            Escalation.status == "resolved",
            Escalation.rating.is_(None),
        )
        .values(rating=rating)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    session.add(Feedback(conversation_id=conversation_id, topic="handoff", rating=rating, created_at=now))
    return True


async def chats_of_member(session: AsyncSession, *, member_id: int) -> list[ChatLink]:
    """The chat accounts verified as this member (where decisions are told)."""
    query = select(ChatLink).where(ChatLink.member_id == member_id).order_by(ChatLink.id)
    return list((await session.execute(query)).scalars().all())


async def conversation_of_chat(session: AsyncSession, *, channel: str, user_id: str) -> Conversation | None:
    query = select(Conversation).where(Conversation.channel == channel, Conversation.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none()


async def decide(
    session: AsyncSession,
    model: type[AuditRequest | Appeal],
    *,
    row_id: int,
    approve: bool,
    decided_by: str,
    note: str,
    now: datetime,
) -> bool:
    """Record a decision on an undecided audit request or appeal; False when it was decided already."""
    result = await session.execute(
        update(model)
        .where(model.id == row_id, model.status.in_(UNDECIDED))
        .values(
            status="approved" if approve else "denied",
            decided_by=decided_by,
            decided_at=now,
            decision_note=note,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def documents_of(session: AsyncSession, *, kind: str, row_id: int) -> list[Document]:
    """The documents filed with an audit request (``kind="audit"``) or an appeal."""
    column = Document.audit_request_id if kind == "audit" else Document.appeal_id
    return list(
        (await session.execute(select(Document).where(column == row_id).order_by(Document.id))).scalars()
    )


# --- privacy ---------------------------------------------------------------------------------------------


async def purge(
    session: AsyncSession,
    *,
    now: datetime,
    transcripts_before: datetime,
    codes_before: datetime,
    deliveries_before: datetime,
    sent_mail_before: datetime,
    uploads_before: datetime,
) -> dict[str, int]:
    """Delete personal data past its retention; returns how many rows of each kind went."""
    statements = {
        "transcripts": delete(TranscriptEntry).where(TranscriptEntry.created_at < transcripts_before),
        "unanswered_questions": delete(UnansweredQuestion).where(
            UnansweredQuestion.created_at < transcripts_before
        ),
        "answered_questions": update(Feedback)  # the answer's figures stay, the member's words go
        .where(Feedback.created_at < transcripts_before, Feedback.question.is_not(None))
        .values(question=None),
        "verification_codes": delete(VerificationCode).where(VerificationCode.created_at < codes_before),
        "processed_deliveries": delete(ProcessedUpdate).where(
            ProcessedUpdate.processed_at < deliveries_before
        ),
        "rate_limits": delete(RateLimit).where(RateLimit.window_start < now - timedelta(days=2)),
        "sent_mail": delete(OutboxMessage).where(
            OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < sent_mail_before
        ),
        "abandoned_uploads": delete(Document).where(
            Document.audit_request_id.is_(None),
            Document.appeal_id.is_(None),
            Document.uploaded_at < uploads_before,
        ),
    }
    counts: dict[str, int] = {}
    for kind, statement in statements.items():
        result = await session.execute(statement)
        counts[kind] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return counts


# --- text messages ---------------------------------------------------------------------------------------

_SMS_OPT_OUTS = Base.metadata.tables["sms_opt_outs"]


async def sms_opted_out(db: Database, *, number: str) -> bool:
    """Whether ``number`` texted STOP and has not texted START since: nothing may be sent to it."""
    found = await db.execute(select(_SMS_OPT_OUTS.c.number).where(_SMS_OPT_OUTS.c.number == number))
    return found.first() is not None


async def set_sms_opt_out(db: Database, *, number: str, opted_out: bool, now: datetime) -> None:
    """Record a STOP (``opted_out``) or a START for ``number``; doing it twice changes nothing."""
    if opted_out:
        statement = _insert_ignoring_conflicts(_dialect(db), _SMS_OPT_OUTS.name)
        await db.execute(statement, {"number": number, "opted_out_at": now})
    else:
        await db.execute(delete(_SMS_OPT_OUTS).where(_SMS_OPT_OUTS.c.number == number))


# --- WhatsApp's customer service window ---------------------------------------------------------------------

_WHATSAPP_WINDOWS = Base.metadata.tables["whatsapp_windows"]


@functools.cache
def _note_whatsapp_message(dialect: str) -> Executable:
    make_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = make_insert(_WHATSAPP_WINDOWS)
    greatest = func.max if dialect == "sqlite" else func.greatest  # SQLite's max() of two values
    column = _WHATSAPP_WINDOWS.c.last_message_at
    return statement.on_conflict_do_update(
        index_elements=[_WHATSAPP_WINDOWS.c.wa_id],
        set_={"last_message_at": greatest(column, statement.excluded.last_message_at)},
    )


async def note_whatsapp_message(db: Database, *, wa_id: str, at: datetime) -> None:
    """Record that ``wa_id`` wrote at ``at`` (a message delivered late or twice never moves it back)."""
    await db.execute(_note_whatsapp_message(_dialect(db)), {"wa_id": wa_id, "last_message_at": at})


async def whatsapp_last_message(db: Database, *, wa_id: str) -> datetime | None:
    """When ``wa_id`` last wrote, or None when it never did."""
    column = _WHATSAPP_WINDOWS.c.last_message_at
    found = await db.execute(select(column).where(_WHATSAPP_WINDOWS.c.wa_id == wa_id))
    at: datetime | None = found.scalar_one_or_none()
    return at
