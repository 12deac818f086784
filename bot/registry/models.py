"""SQLAlchemy 2.0 typed models of every table the assistant reads or writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ENROLLMENT_STATUSES = ("enrolled", "withdrawn", "attended")
REQUEST_STATUSES = ("submitted", "under_review", "approved", "denied")
ESCALATION_STATUSES = ("open", "claimed", "resolved")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("registry", "registry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16), default="ca")
    registry_id: Mapped[str] = mapped_column(String(32), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    preferred_language: Mapped[str] = mapped_column(String(16), default="en")
    role: Mapped[str] = mapped_column(String(100), default="")


class Sponsor(Base):
    __tablename__ = "sponsors"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    allows_self_withdrawal: Mapped[bool] = mapped_column(Boolean, default=True)
    self_withdrawal_window_days: Mapped[int] = mapped_column(Integer, default=0)


class Training(Base):
    __tablename__ = "trainings"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    sponsor_id: Mapped[int] = mapped_column(ForeignKey("sponsors.id"))
    title: Mapped[str] = mapped_column(String(300))
    starts_at: Mapped[datetime]
    hours: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False))
    language: Mapped[str] = mapped_column(String(16), default="en")
    location: Mapped[str] = mapped_column(String(200), default="")

    sponsor: Mapped[Sponsor] = relationship(lazy="joined")


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("member_id", "training_id"),
        CheckConstraint(_in("status", ENROLLMENT_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id"))
    status: Mapped[str] = mapped_column(String(16), default="enrolled")
    withdrawn_at: Mapped[datetime | None]
    withdrawn_via: Mapped[str | None] = mapped_column(String(32))

    training: Mapped[Training] = relationship(lazy="joined")


class AuditRequest(Base):
    __tablename__ = "audit_requests"
    __table_args__ = (CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    involves_coursework: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    channel: Mapped[str] = mapped_column(String(32), default="")
    submitted_at: Mapped[datetime]
    due_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision_note: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(64))  # where its card was posted
    slack_ts: Mapped[str | None] = mapped_column(String(64))


class Appeal(Base):
    __tablename__ = "appeals"
    __table_args__ = (CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    audit_request_id: Mapped[int] = mapped_column(ForeignKey("audit_requests.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    channel: Mapped[str] = mapped_column(String(32), default="")
    submitted_at: Mapped[datetime]
    due_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision_note: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(64))  # where its card was posted
    slack_ts: Mapped[str | None] = mapped_column(String(64))


class Document(Base):
    """A supporting document of an audit request or an appeal, checked by content and hashed.

    While the member is still gathering documents it belongs to the conversation only (pending); the
    request finally submitted takes it over, and a cancelled request deletes it.
    """

    __tablename__ = "documents"
    __table_args__ = (CheckConstraint("audit_request_id IS NULL OR appeal_id IS NULL", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    audit_request_id: Mapped[int | None] = mapped_column(ForeignKey("audit_requests.id"), index=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime]


class Conversation(Base):
    """One member's conversation on one channel; ``state`` holds the language and the active flow."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    language: Mapped[str] = mapped_column(String(16))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TranscriptEntry(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # "in" (member), "out" (assistant), "staff"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ProcessedUpdate(Base):
    """A delivery id already handled, so a redelivered update is ignored."""

    __tablename__ = "processed_updates"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime]
    #: the replies the message got (JSON), sent again when the platform delivers it again
    replies: Mapped[str | None] = mapped_column(Text)


class RateLimit(Base):
    """How often something limited (a client address's messages, e-mails to an address) happened in one
    window of time; shared by every process."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class ChatLink(Base):
    """A chat account verified as a registry member."""

    __tablename__ = "chat_links"
    __table_args__ = (UniqueConstraint("channel", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    linked_at: Mapped[datetime]


class VerificationCode(Base):
    """A one-time code e-mailed to a member; only its hash is stored."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_verification_codes_subject", "subject", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None]
    #: a digest of the registry and the Registry ID the code was asked for (see ``flows.link.subject``)
    subject: Mapped[str | None] = mapped_column(String(64))
    failed_at: Mapped[datetime | None]  # when a wrong code was last typed for it


class Escalation(Base):
    __tablename__ = "escalations"
    __table_args__ = (CheckConstraint(_in("status", ESCALATION_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    language: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(64))
    rating: Mapped[int | None]


class OutboxMessage(Base):
    """One e-mail to send; delivered by the SMTP worker, kept until sent."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Feedback(Base):
    """An article given as an answer and whether it helped (👍/👎, ``helpful`` NULL until said), or a
    rating after a hand-off."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    topic: Mapped[str | None] = mapped_column(String(64))
    helpful: Mapped[bool | None] = mapped_column(Boolean)
    rating: Mapped[int | None]
    created_at: Mapped[datetime]
    registry_key: Mapped[str | None] = mapped_column("registry", String(16))
    language: Mapped[str | None] = mapped_column(String(16))  # the answer's language
    question: Mapped[str | None] = mapped_column(Text)  # what the member asked, personal data masked


GAP_KINDS = ("unknown", "clarify", "unhelpful")
GAP_STATUSES = ("open", "labelled", "new_article", "ignored")


class UnansweredQuestion(Base):
    """A content gap: a question the assistant declined (``unknown``) or asked back about (``clarify``), or
    one whose answer got a 👎 (``unhelpful``, ``topic`` being the article given)."""

    __tablename__ = "unanswered_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16), default="unknown")
    topic: Mapped[str | None] = mapped_column(String(64))
    gap_group_id: Mapped[int | None] = mapped_column(ForeignKey("gap_groups.id"), index=True)


class GapGroup(Base):
    """Questions of a content-gap digest that say the same thing, and what staff decided about them: they
    belong to a topic (``labelled``), need a new article (``new_article``, ``topic`` its future id), or are
    ``ignored``."""

    __tablename__ = "gap_groups"
    __table_args__ = (CheckConstraint(_in("status", GAP_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16), index=True)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    topic: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]


class TrainingLabel(Base):
    """A member's question staff said belongs to a topic: an example ``registry-bot kb train`` learns from.
    Undone labels stay, with who undid them and when, and are no longer trained on."""

    __tablename__ = "training_labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16), index=True)
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(64))
    gap_group_id: Mapped[int | None] = mapped_column(ForeignKey("gap_groups.id"), index=True)
    labelled_by: Mapped[str] = mapped_column(String(100))
    labelled_at: Mapped[datetime]
    undone_by: Mapped[str | None] = mapped_column(String(100))
    undone_at: Mapped[datetime | None]


class SmsOptOut(Base):
    """A phone number that texted STOP (or ALTO): nothing is sent to it until it texts START."""

    __tablename__ = "sms_opt_outs"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out_at: Mapped[datetime]


class WhatsAppWindow(Base):
    """When a WhatsApp number last wrote: for 24 hours after that, anything may be sent to it (WhatsApp's
    customer service window); after, only an approved template."""

    __tablename__ = "whatsapp_windows"

    wa_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_message_at: Mapped[datetime]
