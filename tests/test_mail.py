"""E-mail delivery through a real SMTP server on 127.0.0.1 (aiosmtpd): what arrives, retries, no losses."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import SecretStr
from sqlalchemy import delete, select

from bot.app import App
from bot.mail import OutboxSender, backoff
from bot.registry.models import OutboxMessage
from bot.registry.repo import enqueue_email
from tests.conftest import Clock
from tests.helpers import Chatter

MARIA = ("10000001", "maria.lopez@example.org")
SENDER = "Registry Help Desk <help@registry.example.org>"


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


class MeetingInbox(Inbox):
    """Holds its first message until a second one arrives: only two senders working at once get past."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0
        self.second = asyncio.Event()
        self.met = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.received += 1
        if self.received == 1:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):  # a safety net: the test fails on ``met`` instead
                    await self.second.wait()
                    self.met = True
        else:
            self.second.set()
        return await super().handle_DATA(server, session, envelope)


class BusyInbox(Inbox):
    """Calls ``meanwhile`` (from the server's thread) while its first message is in flight."""

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        super().__init__()
        self.meanwhile: Callable[[], object] | None = meanwhile

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return await super().handle_DATA(server, session, envelope)


class CrashingInbox(Inbox):
    """An inbox whose ``at``-th message finds the sender killed while it is in flight.

    The sender's task is cancelled (for the database, a process killed at that point: its transaction never
    commits) and the server then accepts that message (``accept=True``: the crash fell between the SMTP
    server's "250" and the commit) or refuses it (the crash came first, nothing was delivered).
    """

    def __init__(self, *, at: int, accept: bool) -> None:
        super().__init__()
        self.at, self.accept = at, accept
        self.received = 0
        self.kill: Callable[[], object] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.received += 1
        if self.received == self.at and self.kill is not None:
            # queued on the test's loop before the client thread can hear back, so the sender's task is
            # cancelled before it learns how the message fared
            self.kill()
            if not self.accept:
                return "451 Requested action aborted"
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def serve_smtp(inbox: Inbox) -> Iterator[int]:
    """An SMTP server on 127.0.0.1 delivering to ``inbox``; yields its port."""
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
        yield port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with serve_smtp(inbox) as port:
        yield inbox, port


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


async def enqueue(app: App, count: int, *, now: datetime) -> list[int]:
    """``count`` e-mails in the outbox, to member0@example.org, member1@...; returns their row ids."""
    async with app.sessionmaker() as session, session.begin():
        for n in range(count):
            enqueue_email(session, recipient=member(n), subject=f"Message {n}", body="Hello\n", now=now)
    return [row.id for row in await outbox(app)]


def member(n: int) -> str:
    return f"member{n}@example.org"


def recipients(inbox: Inbox) -> list[str]:
    return [recipient for recipients, _message in inbox.messages for recipient in recipients]


async def crash_while_sending(sender: OutboxSender, inbox: CrashingInbox, now: datetime) -> None:
    """A delivery round killed while the inbox's ``at``-th message is in flight."""
    loop = asyncio.get_running_loop()
    round_ = asyncio.create_task(sender.deliver_due(now))
    inbox.kill = lambda: loop.call_soon_threadsafe(round_.cancel)
    with pytest.raises(asyncio.CancelledError):
        await round_
    inbox.kill = None


async def test_a_crash_mid_batch_sends_again_only_what_the_server_had_not_accepted(
    app: App, sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    """Killed while the third of five is in flight: the two accepted stay sent, the others go once."""
    await enqueue(app, 5, now=clock.now)
    inbox = CrashingInbox(at=3, accept=False)
    with serve_smtp(inbox) as port:
        await crash_while_sending(sender(port), inbox, clock.now)
        assert recipients(inbox) == [member(0), member(1)]
        rows = await outbox(app)
        assert [row.sent_at is not None for row in rows] == [True, True, False, False, False]
        assert [row.attempts for row in rows] == [1, 1, 0, 0, 0]  # the one in flight was never committed

        assert await sender(port).deliver_due(clock.now) == 3
    assert recipients(inbox) == [member(n) for n in range(5)]  # each exactly once
    assert all(row.sent_at is not None and row.attempts == 1 for row in await outbox(app))


async def test_a_message_sent_again_after_a_crash_keeps_its_message_id(
    app: App, sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    """Killed after the server accepted the first message, before the commit: the re-send is the same
    message to a mail server (same Message-ID), and every message has one of its own in the bot's domain."""
    first_id, second_id = await enqueue(app, 2, now=clock.now)
    inbox = CrashingInbox(at=1, accept=True)
    with serve_smtp(inbox) as port:
        await crash_while_sending(sender(port, smtp_from=SENDER), inbox, clock.now)
        assert [row.sent_at for row in await outbox(app)] == [None, None]
        assert await sender(port, smtp_from=SENDER).deliver_due(clock.now) == 2
    assert recipients(inbox) == [member(0), member(0), member(1)]
    first, again, second = (str(message["Message-ID"]) for _recipients, message in inbox.messages)
    assert first == again != second
    assert re.fullmatch(rf"<outbox-{first_id}\.[0-9a-f]{{16}}@registry\.example\.org>", first)
    assert re.fullmatch(rf"<outbox-{second_id}\.[0-9a-f]{{16}}@registry\.example\.org>", second)


async def test_a_row_that_takes_the_id_of_a_purged_one_has_a_message_id_of_its_own(
    app: App, smtp_server: tuple[Inbox, int], sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    """SQLite gives a new row the id of a deleted one: a mail server must not drop it as a duplicate."""
    inbox, port = smtp_server
    (row_id,) = await enqueue(app, 1, now=clock.now)
    assert await sender(port).deliver_due(clock.now) == 1
    clock.now += timedelta(days=31)
    async with app.sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMessage))  # sent mail past its retention
        session.add(
            OutboxMessage(
                id=row_id, recipient=member(0), subject="Later", body="Hi\n", created_at=clock.now, attempts=0
            )
        )
    assert await sender(port).deliver_due(clock.now) == 1
    old, new = (str(message["Message-ID"]) for _recipients, message in inbox.messages)
    assert old != new
    assert old.startswith(f"<outbox-{row_id}.") and new.startswith(f"<outbox-{row_id}.")


async def test_a_turn_writes_while_a_message_is_in_flight(
    app: App, sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    """The claim holds no lock a turn needs (SQLite's write lock): a turn that writes while the SMTP server
    holds a message neither waits for the send nor makes its marking fail."""
    await enqueue(app, 1, now=clock.now)
    loop = asyncio.get_running_loop()

    async def a_turn_writes() -> None:
        async with app.sessionmaker() as session, session.begin():
            enqueue_email(session, recipient=member(1), subject="Meanwhile", body="Hi\n", now=clock.now)

    inbox = BusyInbox(lambda: asyncio.run_coroutine_threadsafe(a_turn_writes(), loop).result(timeout=10))
    with serve_smtp(inbox) as port:
        assert await sender(port).deliver_due(clock.now) == 2
    assert recipients(inbox) == [member(0), member(1)]
    assert all(row.sent_at is not None for row in await outbox(app))


async def test_two_senders_at_once_send_each_message_once(
    app: App, sender: Callable[..., OutboxSender], clock: Clock
) -> None:
    """Two processes' delivery rounds side by side (PostgreSQL): each claims its own rows."""
    if app.database.dialect.name == "sqlite":
        pytest.skip("SQLite serves one process: its rows are not claimed")
    await enqueue(app, 6, now=clock.now)
    inbox = MeetingInbox()
    with serve_smtp(inbox) as port:
        sent = await asyncio.gather(sender(port).deliver_due(clock.now), sender(port).deliver_due(clock.now))
    assert inbox.met  # the first message was held until the other sender delivered one: they overlapped
    assert sum(sent) == 6 and min(sent) > 0
    assert sorted(recipients(inbox)) == [member(n) for n in range(6)]
