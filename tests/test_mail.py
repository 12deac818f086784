"""E-mail delivery through a real SMTP server on 127.0.0.1 (aiosmtpd): what arrives, retries, no losses."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import App
from bot.mail import OutboxSender, backoff
from bot.registry.models import OutboxMessage
from tests.conftest import Clock
from tests.helpers import Chatter

MARIA = ("10000001", "maria.lopez@example.org")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.logins: list[bytes] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login)
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(
            (list(envelope.rcpt_tos), email.message_from_bytes(content, policy=email.policy.default))
        )
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # plain on loopback, in tests only
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def sender(app: App) -> Callable[..., OutboxSender]:
    def build(port: int, **overrides: Any) -> OutboxSender:
        settings = app.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False, **overrides}
        )
        return OutboxSender(settings, app.sessionmaker)

    return build


async def outbox(app: App) -> list[OutboxMessage]:
    async with app.sessionmaker() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def ask_for_a_code(app: App) -> None:
    member = Chatter(app.engine, "maria-mail")
    await member.say("quiero verificar mi cuenta")
    await member.say(MARIA[0])
    await member.say(MARIA[1])


def body_of(message: Message) -> str:
    part = message.get_payload(decode=True)
    assert isinstance(part, bytes)
    return part.decode(message.get_content_charset() or "utf-8")


async def test_the_code_arrives_in_the_members_language(
    app: App, smtp_server: tuple[Inbox, int], sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    inbox, port = smtp_server
    await ask_for_a_code(app)
    assert await sender(port).deliver_due(clock.now) == 1
    ((recipients, message),) = inbox.messages
    assert recipients == [MARIA[1]]
    assert message["To"] == MARIA[1] and "código" in message["Subject"].lower()
    body = body_of(message)
    assert re.search(r"\b\d{6}\b", body) and "Hola, Maria" in body
    (row,) = await outbox(app)
    assert row.sent_at is not None and row.attempts == 1
    assert await sender(port).deliver_due(clock.now) == 0  # sent once, never again
    assert len(inbox.messages) == 1


async def test_login_is_used_when_configured(
    app: App, smtp_server: tuple[Inbox, int], sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    inbox, port = smtp_server
    await ask_for_a_code(app)
    assert (
        await sender(port, smtp_username="bot", smtp_password=SecretStr("s3cret")).deliver_due(clock.now) == 1
    )
    assert inbox.logins == [b"bot"]
    assert len(inbox.messages) == 1


async def test_a_server_that_is_down_loses_nothing_and_is_retried_with_backoff(
    app: App, sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    await ask_for_a_code(app)
    port = free_port()  # nothing listens here yet
    down = sender(port, smtp_timeout=2.0)
    assert await down.deliver_due(clock.now) == 0
    (row,) = await outbox(app)
    assert row.sent_at is None and row.attempts == 1 and row.next_attempt_at is not None
    assert row.next_attempt_at - clock.now == timedelta(minutes=1)
    assert await down.deliver_due(clock.now) == 0  # not due yet: no attempt
    (row,) = await outbox(app)
    assert row.attempts == 1

    clock.now += timedelta(minutes=1)
    assert await down.deliver_due(clock.now) == 0
    (row,) = await outbox(app)
    assert row.attempts == 2 and row.next_attempt_at - clock.now == timedelta(minutes=2)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.now += timedelta(minutes=2)
        assert await down.deliver_due(clock.now) == 1
    finally:
        controller.stop()
    ((recipients, _message),) = inbox.messages
    assert recipients == [MARIA[1]]


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(20) == timedelta(hours=1)
