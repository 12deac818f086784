"""E-mail: compose from templates in the member's language, and deliver the outbox over SMTP.

Requests and codes are written to the outbox in the same transaction as the turn that confirms them; the
delivery worker sends what is due, retrying with backoff. Each message has a transaction of its own: claimed,
sent, marked sent and committed before the next is claimed, so nothing is lost and a crash re-sends at most
the one message in flight. That re-send carries the same Message-ID, so a mail server can drop it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.registry.models import OutboxMessage
from bot.render import render

logger = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)


def compose(name: str, lang: str, *, tz: str, **context: Any) -> tuple[str, str]:
    """(subject, body) of ``templates/email/<name>.j2``: the first line is the subject."""
    text = render(f"email/{name}", lang, tz=tz, **context)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.strip() + "\n"


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failed attempt, at most an hour."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def message_id(message: OutboxMessage, sender: str) -> str:
    """The Message-ID of an outbox row, the same on every attempt, in the domain of ``sender``'s address.

    The digest of the row's id and creation time tells apart two rows with one id (SQLite reuses the id
    of a deleted row; another database has its own row 1), which a mail server would otherwise take for
    duplicates. It holds nothing about the recipient or the body.
    """
    domain = parseaddr(sender)[1].rpartition("@")[2] or "registry-bot.local"
    created = message.created_at.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"{message.id}|{created}".encode()).hexdigest()[:16]
    return f"<outbox-{message.id}.{digest}@{domain}>"


def due(now: datetime) -> Select[OutboxMessage]:
    """The first unsent message due at ``now``, locked; PostgreSQL skips rows other processes hold."""
    return (
        select(OutboxMessage)
        .where(
            OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
        )
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


class OutboxSender:
    """Delivers due outbox messages through the configured SMTP server."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_host)

    def _send(self, message: OutboxMessage) -> None:
        settings = self.settings
        email = EmailMessage()
        email["From"] = settings.smtp_from
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Message-ID"] = message_id(message, settings.smtp_from)
        email.set_content(message.body)
        context = ssl.create_default_context()
        host, port, timeout = settings.smtp_host or "", settings.smtp_port, settings.smtp_timeout
        smtp: smtplib.SMTP
        if settings.smtp_ssl:
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if settings.smtp_starttls and not settings.smtp_ssl:
                smtp.starttls(context=context)
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            smtp.send_message(email)

    async def deliver_due(self, now: datetime, *, limit: int = 50) -> int:
        """Send up to ``limit`` messages that are due, one transaction each; returns how many were sent.

        A message is claimed (its row lock, on PostgreSQL, keeps other processes off it until the commit),
        sent, and marked sent in the same short transaction, before the next one is claimed. SQLite has no
        row locks, and its write lock is not held during the send (turns must not wait for SMTP): there,
        one process sends.
        """
        if not self.configured:
            return 0
        sent = 0
        for _ in range(limit):
            async with self.sessionmaker() as session, session.begin():
                message = await session.scalar(due(now))
                if message is None:
                    break
                if await self._attempt(message, now):
                    sent += 1
        return sent

    async def _attempt(self, message: OutboxMessage, now: datetime) -> bool:
        """Send ``message``; record the attempt and its outcome on the row (the caller commits)."""
        message.attempts += 1
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            message.next_attempt_at = now + backoff(message.attempts)
            message.last_error = type(exc).__name__
            logger.warning(
                "e-mail %s not delivered (attempt %s): %s", message.id, message.attempts, type(exc).__name__
            )
            return False
        message.sent_at = now
        return True

    async def run(self, clock: Callable[[], datetime], *, interval: float = 5.0) -> None:
        """Deliver forever, every ``interval`` seconds (a background task of ``serve``)."""
        while True:
            try:
                await self.deliver_due(clock())
            except Exception:  # the database may be away for a while: try again next round
                logger.exception("outbox delivery round failed")
            await asyncio.sleep(interval)


async def pending(
    sessionmaker: async_sessionmaker[AsyncSession], *, include_sent: bool = False
) -> list[OutboxMessage]:
    async with sessionmaker() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if not include_sent:
            query = query.where(OutboxMessage.sent_at.is_(None))
        return list((await session.execute(query)).scalars().all())
