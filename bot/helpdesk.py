"""What help desk staff do, whatever tool they use: claim, reply, resolve, decide audits and appeals.

The Slack adapter calls these; they change the registry database in one transaction each, say whether the
action took effect (a second click, or a click by someone not allowed, changes nothing), and tell the member
in their own language, in their chat and, for decisions, by e-mail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import LANGUAGES, Profile, Settings
from bot.hours import SupportHours
from bot.mail import compose
from bot.messages import Choice, Reply
from bot.registry import repo
from bot.registry.models import (
    Appeal,
    AuditRequest,
    Conversation,
    Escalation,
    Feedback,
    Member,
    TranscriptEntry,
    UnansweredQuestion,
)
from bot.render import render

#: what has a card in Slack, by the kind the Slack channel names it with
POSTED: dict[str, type[Escalation | AuditRequest | Appeal]] = {
    "escalation": Escalation,
    "audit": AuditRequest,
    "appeal": Appeal,
}

logger = logging.getLogger(__name__)

#: delivers replies to a member's chat: (channel, chat user id, replies) -> whether it was delivered
Push = Callable[[str, str, list[Reply]], Awaitable[bool]]
RATINGS = (1, 2, 3, 4, 5)
MAX_STATS_DAYS = 3650  # staff statistics look back at most ten years


@dataclass(frozen=True, slots=True)
class Outcome:
    """Whether a staff action took effect, and a sentence for that staff member."""

    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class EscalationCard:
    """What staff see of an escalation."""

    id: int
    member: str  # "Maria Lopez (10000001)" or "not verified"
    language: str
    registry: str
    question: str
    after_hours: bool
    status: str
    claimed_by: str | None
    created_at: datetime
    transcript: tuple[tuple[str, str], ...] = field(default=())  # (who, text), oldest first


@dataclass(frozen=True, slots=True)
class RequestCard:
    """What staff see of an audit request or an appeal."""

    id: int
    kind: str  # "audit" or "appeal"
    reference: str
    member: str
    status: str
    text: str  # the description, or the appeal's reason
    due_at: datetime
    documents: tuple[str, ...]
    audit_reference: str = ""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What staff see of a member on a lookup: who, their requests and their chats."""

    label: str
    email: str
    role: str
    requests: tuple[tuple[str, str, datetime], ...]  # (reference, status, decision due)
    chats: tuple[tuple[str, datetime], ...]  # (channel, last active)


@dataclass(frozen=True, slots=True)
class Stats:
    days: int
    conversations: int
    answered_alone: int
    handoffs: int
    average_rating: float | None
    top_unanswered: tuple[tuple[str, int], ...]


def member_label(member: Member | None) -> str:
    return f"{member.first_name} {member.last_name} ({member.registry_id})" if member else "not verified"


class HelpDesk:
    """Staff actions on escalations and requests of one registry profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        profile: Profile,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        push: Push | None = None,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.push = push
        self.hours = SupportHours(profile)

    # -- who may do what ----------------------------------------------------------------------------------

    def is_staff(self, user: str) -> bool:
        allowed = {
            *self.settings.slack_staff_ids,
            *self.settings.slack_operations_ids,
            *self.settings.slack_director_ids,
        }
        return user in allowed

    async def first_delivery(self, source: str, delivery_id: str) -> bool:
        """True the first time ``delivery_id`` arrives from ``source`` (a retried event is dropped)."""
        async with self.sessionmaker() as session, session.begin():
            return await repo.claim_delivery(
                session, channel=source, delivery_id=delivery_id, now=self.clock()
            )

    # -- escalations --------------------------------------------------------------------------------------

    async def escalation_card(self, escalation_id: int, *, transcript: int = 8) -> EscalationCard | None:
        async with self.sessionmaker() as session:
            escalation = await repo.escalation_by_id(session, escalation_id)
            if escalation is None:
                return None
            return await self._card(session, escalation, transcript=transcript)

    async def _card(
        self, session: AsyncSession, escalation: Escalation, *, transcript: int
    ) -> EscalationCard:
        member = await session.get(Member, escalation.member_id) if escalation.member_id else None
        entries = await repo.recent_transcript(session, escalation.conversation_id, limit=transcript)
        who = {"in": "member", "out": "assistant", "staff": "help desk"}
        return EscalationCard(
            id=escalation.id,
            member=member_label(member),
            language=escalation.language,
            registry=escalation.registry_key,
            question=escalation.question,
            after_hours=escalation.after_hours,
            status=escalation.status,
            claimed_by=escalation.claimed_by,
            created_at=escalation.created_at,
            transcript=tuple((who.get(e.direction, e.direction), e.text) for e in entries),
        )

    async def queue(self) -> list[EscalationCard]:
        """Open escalations, oldest first."""
        async with self.sessionmaker() as session:
            escalations = await repo.open_escalations(session, registry=self.profile.key)
            return [await self._card(session, e, transcript=0) for e in escalations]

    async def after_hours_waiting(self, since: datetime) -> list[EscalationCard]:
        """Open escalations that came in after hours since ``since`` (for the morning summary)."""
        return [card for card in await self.queue() if card.after_hours and card.created_at >= since]

    async def record_post(self, kind: str, row_id: int, *, channel: str, ts: str) -> None:
        """Remember where the card of an escalation, audit request or appeal (``kind``) was posted: thread
        replies find an escalation by it, and a card that has it is not posted again."""
        model = POSTED[kind]
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(model).where(model.id == row_id).values(slack_channel=channel, slack_ts=ts)
            )

    async def unposted(self, before: datetime) -> list[tuple[str, int]]:
        """(kind, id) of the open escalations and undecided requests stored before ``before`` whose card
        never reached Slack (the process that stored them stopped before it could post)."""
        async with self.sessionmaker() as session:
            found: list[tuple[str, int]] = []
            for kind, model, statuses, created in (
                ("escalation", Escalation, repo.OPEN_ESCALATION, Escalation.created_at),
                ("audit", AuditRequest, repo.UNDECIDED, AuditRequest.submitted_at),
                ("appeal", Appeal, repo.UNDECIDED, Appeal.submitted_at),
            ):
                query = (
                    select(model.id)
                    .where(model.slack_ts.is_(None), model.status.in_(statuses), created < before)
                    .order_by(model.id)
                )
                found += [(kind, int(row_id)) for row_id in (await session.execute(query)).scalars()]
            return found

    async def escalation_for_thread(self, channel: str, ts: str) -> Escalation | None:
        async with self.sessionmaker() as session:
            query = select(Escalation).where(Escalation.slack_channel == channel, Escalation.slack_ts == ts)
            return (await session.execute(query)).scalar_one_or_none()

    async def member_message(self, entry_id: int) -> tuple[Escalation, str] | None:
        """The open escalation a member's transcript entry belongs to, and its text (to post to staff)."""
        async with self.sessionmaker() as session:
            entry = await session.get(TranscriptEntry, entry_id)
            if entry is None:
                return None
            query = select(Escalation).where(
                Escalation.conversation_id == entry.conversation_id,
                Escalation.status.in_(repo.OPEN_ESCALATION),
            )
            escalation = (await session.execute(query.order_by(Escalation.id.desc()))).scalars().first()
            return (escalation, entry.text) if escalation else None

    async def claim(self, escalation_id: int, staff: str) -> Outcome:
        async with self.sessionmaker() as session, session.begin():
            if await repo.claim_escalation(
                session, escalation_id=escalation_id, staff=staff, now=self.clock()
            ):
                return Outcome(True, f"<@{staff}> has it.")
            escalation = await repo.escalation_by_id(session, escalation_id)
        if escalation is None:
            return Outcome(False, "That escalation no longer exists.")
        if escalation.status == "resolved":
            return Outcome(False, "That escalation is already resolved.")
        return Outcome(False, f"<@{escalation.claimed_by}> already has it.")

    async def reply(
        self, escalation_id: int, staff_name: str, text: str, *, delivery: tuple[str, str] | None = None
    ) -> Outcome:
        """Send a staff member's words to the member, marked as coming from the help desk.

        ``delivery`` (source, id) is claimed in the same transaction as the stored reply: a redelivery
        changes nothing, and a reply that could not be stored leaves the delivery unclaimed, to retry.
        """
        async with self.sessionmaker() as session, session.begin():
            if delivery is not None and not await repo.claim_delivery(
                session, channel=delivery[0], delivery_id=delivery[1], now=self.clock()
            ):
                return Outcome(True, "Already sent to the member.")
            escalation = await repo.escalation_by_id(session, escalation_id)
            if escalation is None or escalation.status == "resolved":
                return Outcome(False, "This escalation is closed: the member did not get that message.")
            conversation = await session.get(Conversation, escalation.conversation_id)
            assert conversation is not None
            message = render(
                "helpdesk/staff_reply",
                conversation.language,
                tz=self.profile.timezone,
                name=staff_name,
                text=text,
            )
            await repo.add_transcript_entry(
                session, conversation_id=conversation.id, direction="staff", text=message, now=self.clock()
            )
            channel, user_id, member_id = conversation.channel, conversation.user_id, escalation.member_id
        if await self._push(channel, user_id, [Reply(message)]):
            return Outcome(True, "Sent to the member.")
        # the chat cannot take it now (a WhatsApp window closed, a number that texted STOP): by e-mail if
        # the member is verified, and staff are told which
        if member_id is not None and await self._email_reply(member_id, conversation.language, message):
            return Outcome(True, "The member's chat cannot take messages now: sent to them by e-mail.")
        return Outcome(
            False,
            "Saved; the member's chat cannot take messages now and they are not verified, "
            "so they will see it when they come back.",
        )

    async def _email_reply(self, member_id: int, lang: str, message: str) -> bool:
        """E-mail a staff reply the member's chat could not take; False when there is no address."""
        async with self.sessionmaker() as session, session.begin():
            member = await session.get(Member, member_id)
            if member is None or not member.email:
                return False
            subject, body = compose(
                "staff_reply",
                lang,
                tz=self.profile.timezone,
                message=message,
                member=member,
                registry_name=self.profile.display_name(lang),
            )
            repo.enqueue_email(session, recipient=member.email, subject=subject, body=body, now=self.clock())
        return True

    async def resolve(self, escalation_id: int, staff: str) -> Outcome:
        """Close the escalation, tell the member, and ask them to rate the help."""
        async with self.sessionmaker() as session, session.begin():
            if not await repo.resolve_escalation(session, escalation_id=escalation_id, now=self.clock()):
                return Outcome(False, "That escalation is already resolved.")
            escalation = await repo.escalation_by_id(session, escalation_id)
            assert escalation is not None
            conversation = await session.get(Conversation, escalation.conversation_id)
            assert conversation is not None
            lang = conversation.language
            message = render("helpdesk/resolved", lang, tz=self.profile.timezone)
            await repo.add_transcript_entry(
                session, conversation_id=conversation.id, direction="out", text=message, now=self.clock()
            )
            channel, user_id = conversation.channel, conversation.user_id
        stars = tuple(Choice("★" * n, f"rate:{escalation_id}:{n}") for n in RATINGS)
        if await self._push(channel, user_id, [Reply(message, stars)]):
            return Outcome(True, f"Resolved by <@{staff}>.")
        return Outcome(
            True,
            f"Resolved by <@{staff}>. The member's chat cannot take messages now, so they "
            "were not asked to rate the help.",
        )

    # -- audits and appeals -------------------------------------------------------------------------------

    async def request_card(self, kind: str, row_id: int) -> RequestCard | None:
        async with self.sessionmaker() as session:
            row = await _request(session, kind, row_id)
            if row is None:
                return None
            member = await session.get(Member, row.member_id)
            documents = await repo.documents_of(session, kind=kind, row_id=row_id)
            audit_reference = ""
            if isinstance(row, Appeal):
                audit = await session.get(AuditRequest, row.audit_request_id)
                audit_reference = audit.reference if audit else ""
            return RequestCard(
                id=row.id,
                kind=kind,
                reference=row.reference,
                member=member_label(member),
                status=row.status,
                text=row.description if isinstance(row, AuditRequest) else row.reason,
                due_at=row.due_at,
                documents=tuple(d.filename for d in documents),
                audit_reference=audit_reference,
            )

    async def request_files(self, kind: str, row_id: int) -> list[tuple[str, bytes]]:
        """(file name, content) of each document filed with a request, for staff to open."""
        async with self.sessionmaker() as session:
            return [
                (d.filename, d.content) for d in await repo.documents_of(session, kind=kind, row_id=row_id)
            ]

    def may_decide(self, kind: str, user: str) -> bool:
        """Audits are decided by the Operations Team, appeals only by the Registry Director."""
        allowed = self.settings.slack_operations_ids if kind == "audit" else self.settings.slack_director_ids
        return user in allowed

    async def decide(self, kind: str, row_id: int, *, user: str, approve: bool, note: str = "") -> Outcome:
        """Approve or deny an audit request (``kind="audit"``) or an appeal, and tell the member."""
        if not self.may_decide(kind, user):
            who = "the Operations Team" if kind == "audit" else "the Registry Director"
            return Outcome(False, f"Only {who} can decide this request.")
        model: type[AuditRequest] | type[Appeal] = AuditRequest if kind == "audit" else Appeal
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            if not await repo.decide(
                session, model, row_id=row_id, approve=approve, decided_by=user, note=note, now=now
            ):
                row = await _request(session, kind, row_id)
                state = row.status.replace("_", " ") if row else "gone"
                return Outcome(False, f"Nothing changed: this request is already {state}.")
            row = await _request(session, kind, row_id)
            assert row is not None
            if isinstance(row, Appeal) and approve:  # an approved appeal overturns the denial
                audit = await session.get(AuditRequest, row.audit_request_id)
                if audit is not None:
                    audit.status, audit.decided_by, audit.decided_at = "approved", user, now
                    audit.decision_note = None  # the denial's reason no longer holds; the status list
                    # names the appeal, in the member's language
            member = await session.get(Member, row.member_id)
            assert member is not None
            outcome = "approved" if approve else "denied"
            template = f"helpdesk/{kind}_{outcome}"
            context: dict[str, Any] = {"reference": row.reference, "note": note, "profile": self.profile}
            lang = member.preferred_language if member.preferred_language in LANGUAGES else "en"
            subject, body = compose(
                "decision",
                lang,
                tz=self.profile.timezone,
                message=render(template, lang, tz=self.profile.timezone, **context),
                reference=row.reference,
                member=member,
                registry_name=self.profile.display_name(lang),
            )
            repo.enqueue_email(session, recipient=member.email, subject=subject, body=body, now=now)
            chats = []
            for link in await repo.chats_of_member(session, member_id=member.id):
                conversation = await repo.conversation_of_chat(
                    session, channel=link.channel, user_id=link.user_id
                )
                chat_lang = conversation.language if conversation else lang
                message = render(template, chat_lang, tz=self.profile.timezone, **context)
                if conversation is not None:
                    await repo.add_transcript_entry(
                        session, conversation_id=conversation.id, direction="out", text=message, now=now
                    )
                chats.append((link.channel, link.user_id, message))
        missed = [
            channel
            for channel, user_id, message in chats
            if not await self._push(channel, user_id, [Reply(message)])
        ]
        done = f"{row.reference} {outcome} by <@{user}>."
        if chats and len(missed) == len(chats):  # staff know how the member hears of it
            return Outcome(
                True, f"{done} The member's chat cannot take messages now: they have it by e-mail."
            )
        return Outcome(True, done)

    # -- staff commands -----------------------------------------------------------------------------------

    async def lookup(self, registry_id: str) -> MemberRecord | None:
        """A member's requests and chats, for staff; None when no member has ``registry_id``."""
        async with self.sessionmaker() as session:
            member = await repo.member_by_registry_id(
                session, registry=self.profile.key, registry_id=registry_id
            )
            if member is None:
                return None
            rows: list[AuditRequest | Appeal] = [
                *await repo.audit_requests_of(session, member_id=member.id),
                *await repo.appeals_of(session, member_id=member.id),
            ]
            requests = tuple((row.reference, row.status, row.due_at) for row in rows)
            chats = []
            for link in await repo.chats_of_member(session, member_id=member.id):
                conversation = await repo.conversation_of_chat(
                    session, channel=link.channel, user_id=link.user_id
                )
                if conversation is not None:
                    chats.append((link.channel, conversation.updated_at))
            return MemberRecord(member_label(member), member.email, member.role, requests, tuple(chats))

    async def stats(self, days: int = 7) -> Stats:
        """Conversations, hand-offs, ratings and unanswered questions of the last ``days`` days."""
        if not 1 <= days <= MAX_STATS_DAYS:
            raise ValueError(f"days must be from 1 to {MAX_STATS_DAYS}")
        since = self.clock() - timedelta(days=days)
        async with self.sessionmaker() as session:
            conversations = await _count(session, Conversation, Conversation.updated_at >= since)
            handoffs = await _count(session, Escalation, Escalation.created_at >= since)
            escalated = select(Escalation.conversation_id).where(Escalation.created_at >= since)
            answered_alone = await _count(
                session, Conversation, Conversation.updated_at >= since, Conversation.id.not_in(escalated)
            )
            rating = (
                await session.execute(
                    select(func.avg(Feedback.rating)).where(
                        Feedback.created_at >= since, Feedback.rating.is_not(None)
                    )
                )
            ).scalar_one_or_none()
            top = await session.execute(
                select(UnansweredQuestion.text, func.count())
                .where(
                    UnansweredQuestion.created_at >= since,
                    UnansweredQuestion.registry_key == self.profile.key,
                    UnansweredQuestion.kind != "unhelpful",  # answered, though not well: in the digest
                )
                .group_by(UnansweredQuestion.text)
                .order_by(func.count().desc(), UnansweredQuestion.text)
                .limit(5)
            )
            return Stats(
                days=days,
                conversations=conversations,
                answered_alone=answered_alone,
                handoffs=handoffs,
                average_rating=round(float(rating), 2) if rating is not None else None,
                top_unanswered=tuple((str(text), int(n)) for text, n in top.all()),
            )

    async def _push(self, channel: str, user_id: str, replies: list[Reply]) -> bool:
        if self.push is None:
            return False
        try:
            return await self.push(channel, user_id, replies)
        except Exception:  # the message is in the transcript; the member sees it when they return
            logger.exception("could not deliver a help desk message on %s", channel)
            return False


async def _request(session: AsyncSession, kind: str, row_id: int) -> AuditRequest | Appeal | None:
    if kind == "audit":
        return await session.get(AuditRequest, row_id)
    return await session.get(Appeal, row_id)


async def _count(session: AsyncSession, model: type[Conversation | Escalation], *where: object) -> int:
    query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
    return int((await session.execute(query)).scalar_one())


__all__: Sequence[str] = (
    "EscalationCard",
    "HelpDesk",
    "MemberRecord",
    "Outcome",
    "Push",
    "RequestCard",
    "Stats",
)
