"""The fault run: several `registry-bot serve` processes on PostgreSQL, members on the web chat and on
Telegram, processes killed with SIGKILL and the database cut off or stalled at random; then an account of
what was accepted, stored, answered and e-mailed.

Telegram is the fake Bot API of the tests, and this program plays Telegram's part in delivering updates:
each update is posted to a live process's webhook until one answers 2xx, as Telegram does behind a load
balancer. Web members post like the page: the same delivery id again until a 200. E-mail goes to a local
SMTP server that keeps every message. Run it with ``python scripts/fault_run.py`` (see the README); the
test ``tests/test_faults.py`` runs a short one in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import text

from bot.channels.telegram import SECRET_HEADER
from bot.config import PROJECT_DIR
from bot.registry.session import make_engine
from tests.fakes.telegram_api import FakeBotAPI
from tests.test_mail import Inbox
from tests.test_server import free_port

WEB_SECRET = "fault-run-web-secret-shared-by-every-process"
WEBHOOK_SECRET = "fault-run-webhook-secret"
APOLOGY = "technical problem"  # the apology for a message that could not be stored (English)
PAUSE = (1.5, 3.5)  # seconds between a member's messages: a person typing, well under the flood limit
MEMBERS = [
    ("10000001", "maria.lopez@example.org"),
    ("10000002", "wei.chen@example.org"),
    ("10000003", "james.carter@example.org"),
    ("10000004", "ana.gutierrez@example.org"),
    ("10000005", "li.wang@example.org"),
    ("10000006", "sam.okafor@example.org"),
]
QUESTIONS = [
    "hello",
    "I forgot my password",
    "how do I withdraw from a training?",
    "when is the help desk open?",
    "how long does a qualification audit take?",
    "thanks",
]


def script(number: int, length: int) -> list[str]:
    """What one member says: questions, and for some an errand that e-mails them (a code, their ID)."""
    said = [QUESTIONS[(number + turn) % len(QUESTIONS)] for turn in range(length)]
    registry_id, address = MEMBERS[number % len(MEMBERS)]
    if number % 3 == 0:  # asks for a code: an e-mail, limited to 3 an hour per member
        said[1:1] = ["verify my account", registry_id, address, "cancel"]
    elif number % 3 == 1:  # asks for the Registry ID by e-mail: limited per address
        said[1:1] = ["send my Registry ID to my e-mail", address]
    return said


# -- the database connection that fails ------------------------------------------------------------------


class Cable:
    """A TCP proxy in front of PostgreSQL that can be cut (connections dropped, new ones refused) or
    stalled (connections held, nothing forwarded) and put back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.state = "up"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.state = "cut"
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        self.state = "stalled"
        self._flowing.clear()

    def restore(self) -> None:
        self.state = "up"
        self._flowing.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state == "cut":
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )
        for end in (writer, upstream_writer):
            self._writers.discard(end)
            end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            await self._flowing.wait()
            if self.state == "cut":
                break
            writer.write(chunk)
            await writer.drain()
        writer.transport.abort()


# -- the processes -----------------------------------------------------------------------------------------


class Process:
    """One `python -m bot serve` on a free port, its stderr in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
        environment.update(env, REGISTRY_BOT_PORT=str(self.port), PYTHONPATH=str(PROJECT_DIR))
        self.log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_ready(self, timeout: float = 60) -> bool:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.alive():
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code in (200, 503):
                        self.ready = True
                        return True
                await asyncio.sleep(0.2)
        return False

    def kill(self) -> None:
        self.ready = False
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        self.ready = False
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# -- the run -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What happened, and what the checks found (``problems`` empty when nothing was lost or doubled)."""

    processes: int
    seconds: float
    kills: int = 0
    cuts: int = 0
    stalls: int = 0
    messages: int = 0
    accepted: int = 0
    refused_attempts: Counter[str] = field(default_factory=Counter)  # why an attempt was not accepted
    stored_in: int = 0
    telegram_replies_expected: int = 0
    telegram_replies_sent: int = 0
    telegram_replies_twice: int = 0
    apologies: int = 0
    emails_queued: int = 0
    emails_received: int = 0
    emails_twice: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        refused = ", ".join(f"{why} {count}" for why, count in sorted(self.refused_attempts.items()))
        return [
            f"{self.processes} processes, {self.seconds:.0f} s: {self.kills} SIGKILLs, "
            f"{self.cuts} database cuts, {self.stalls} database stalls",
            f"messages sent {self.messages}, accepted {self.accepted}, stored {self.stored_in} "
            f"(attempts not accepted: {refused or 'none'})",
            f"Telegram replies: {self.telegram_replies_expected} stored, {self.telegram_replies_sent} sent, "
            f"{self.telegram_replies_twice} sent twice; apologies {self.apologies}",
            f"e-mails: {self.emails_queued} queued, {self.emails_received} received, "
            f"{self.emails_twice} received twice",
            "problems: " + ("; ".join(self.problems) if self.problems else "none"),
        ]


class FaultRun:
    """Members, chaos, then the account (see the module's docstring)."""

    def __init__(
        self,
        *,
        postgres_url: str,
        schema: str,
        workdir: Path,
        processes: int = 3,
        seconds: float = 120,
        web_members: int = 12,
        telegram_members: int = 12,
        messages_each: int = 8,
        seed: int = 1,
    ) -> None:
        self.postgres_url, self.schema, self.workdir = postgres_url, schema, workdir
        self.count, self.seconds = processes, seconds
        self.web_members, self.telegram_members, self.messages_each = (
            web_members,
            telegram_members,
            messages_each,
        )
        self.random = random.Random(seed)  # the members' pauses and choices of a process
        self.chaos = random.Random(seed + 1)  # what fails, and when
        self.report = Report(processes, seconds)
        self.live: list[Process] = []
        self.updates = itertools.count(1)
        self.until = 0.0  # members talk until then (the end of the chaos)

    # -- set-up ------------------------------------------------------------------------------------------

    def _env(self, cable: Cable, api: FakeBotAPI, smtp_port: int) -> dict[str, str]:
        user_host = self.postgres_url.rsplit("@", 1)
        database = user_host[1].split("/", 1)[1]
        return {
            "REGISTRY_BOT_DATABASE_URL": f"{user_host[0]}@127.0.0.1:{cable.port}/{database}",
            "REGISTRY_BOT_DATABASE_SCHEMA": self.schema,
            "REGISTRY_BOT_WEB_SECRET": WEB_SECRET,
            "REGISTRY_BOT_SMTP_HOST": "127.0.0.1",
            "REGISTRY_BOT_SMTP_PORT": str(smtp_port),
            "REGISTRY_BOT_SMTP_STARTTLS": "false",
            "REGISTRY_BOT_TELEGRAM_TOKEN": api.token,
            "REGISTRY_BOT_TELEGRAM_BASE_URL": api.base_url,
            "REGISTRY_BOT_TELEGRAM_BASE_FILE_URL": api.base_file_url,
            "REGISTRY_BOT_TELEGRAM_WEBHOOK_URL": "https://bot.example.org/telegram/webhook",
            "REGISTRY_BOT_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REGISTRY_BOT_TURN_TIMEOUT": "5",
            "REGISTRY_BOT_LOG_LEVEL": "WARNING",
        }

    def _prepare(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
        env.update(REGISTRY_BOT_DATABASE_URL=self.postgres_url, REGISTRY_BOT_DATABASE_SCHEMA=self.schema)
        for action in ("upgrade", "seed-demo"):
            subprocess.run(
                [sys.executable, "-m", "bot", "db", action], env=env, check=True, capture_output=True
            )

    async def run(self) -> Report:
        self._prepare()
        postgres_port = int(self.postgres_url.rsplit("@", 1)[1].split("/")[0].rsplit(":", 1)[1])
        cable = Cable(postgres_port)
        await cable.start()
        inbox = Inbox()
        smtp_port = free_port()
        smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        smtp.start()
        try:
            async with FakeBotAPI() as api:
                env = self._env(cable, api, smtp_port)
                for number in range(self.count):
                    await self._start_process(env, number)
                started = time.monotonic()
                self.until = started + self.seconds
                members = [self._web_member(n) for n in range(self.web_members)]
                members += [self._telegram_member(n) for n in range(self.telegram_members)]
                await asyncio.gather(self._chaos(env, cable), *members)
                cable.restore()
                self.report.seconds = time.monotonic() - started
                await self._ensure_processes(env)
                await self._drain_outbox()
                await self._account(api, inbox)
                for process in self.live:
                    process.stop()
        finally:
            for process in self.live:
                if process.alive():
                    process.kill()
            smtp.stop()
            await cable.stop()
        return self.report

    async def _start_process(self, env: dict[str, str], number: int) -> None:
        while True:
            process = Process(env, self.workdir / f"serve-{number}.log")
            if await process.wait_ready():
                self.live.append(process)
                return
            process.kill()  # it could not start (the database cut off while it migrated): again later
            await asyncio.sleep(1)

    async def _ensure_processes(self, env: dict[str, str]) -> None:
        self.live = [process for process in self.live if process.alive()]
        for number in range(len(self.live), self.count):
            await self._start_process(env, number)

    # -- chaos -------------------------------------------------------------------------------------------

    async def _chaos(self, env: dict[str, str], cable: Cable) -> None:
        """A kill, a cut and a stall first, then any of them, every few seconds until the end."""
        restarts = itertools.count(self.count)
        for number in itertools.count():
            await asyncio.sleep(self.chaos.uniform(2, 5))
            if time.monotonic() > self.until:
                return
            action = (
                ("kill", "cut", "stall")[number]
                if number < 3
                else self.chaos.choice(("kill", "cut", "stall"))
            )
            if action == "kill" and self.live:
                victim = self.chaos.choice(self.live)
                self.live.remove(victim)
                victim.kill()
                self.report.kills += 1
                await asyncio.sleep(self.chaos.uniform(0.5, 2))
                await self._start_process(env, next(restarts))
            elif action in ("cut", "stall"):
                cable.cut() if action == "cut" else cable.stall()
                self.report.cuts += action == "cut"
                self.report.stalls += action == "stall"
                await asyncio.sleep(self.chaos.uniform(2, 8))
                cable.restore()

    # -- members -----------------------------------------------------------------------------------------

    async def _deliver(self, post: Any) -> httpx.Response:
        """Post to a live process until one accepts (2xx), as the page and Telegram do."""
        while True:
            ready = [process for process in self.live if process.ready and process.alive()]
            if ready:
                process = self.random.choice(ready)
                try:
                    response: httpx.Response = await post(process.url)
                except httpx.TransportError as error:
                    self.report.refused_attempts[type(error).__name__] += 1
                else:
                    if response.is_success:
                        return response
                    self.report.refused_attempts[str(response.status_code)] += 1
                    if response.status_code < 500:
                        self.report.problems.append(
                            f"refused with {response.status_code}: {response.text[:200]}"
                        )
                        return response
            await asyncio.sleep(self.random.uniform(0.3, 1.5))

    def _conversation(self, number: int) -> Any:
        """(turn, what the member says) until the chaos is over, and at least ``messages_each`` turns."""
        said = script(number, self.messages_each)
        for turn in itertools.count():
            if turn >= self.messages_each and time.monotonic() > self.until:
                return
            yield turn, said[turn % len(said)]

    async def _web_member(self, number: int) -> None:
        cookies = httpx.Cookies()
        address = f"198.51.100.{number + 1}"  # uvicorn believes X-Forwarded-For from 127.0.0.1
        async with httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": address}) as client:
            client.cookies = cookies
            for turn, said in self._conversation(number):
                delivery = f"web-{number}-{turn}-{self.random.getrandbits(32):08x}"
                self.report.messages += 1

                async def post(url: str, said: str = said, delivery: str = delivery) -> httpx.Response:
                    return await client.post(
                        f"{url}/api/messages", json={"delivery_id": delivery, "text": said}
                    )

                response = await self._deliver(post)
                if response.is_success:
                    self.report.accepted += 1
                    if not response.json()["replies"]:
                        self.report.problems.append(f"web {number}: {said!r} accepted without a reply")
                await asyncio.sleep(self.random.uniform(*PAUSE))

    async def _telegram_member(self, number: int) -> None:
        user = {"id": 90_000 + number, "is_bot": False, "first_name": "Member", "language_code": "en"}
        chat = {"id": user["id"], "type": "private", "first_name": "Member"}
        for _, said in self._conversation(number + 1):
            update_id = next(self.updates)
            update = {
                "update_id": update_id,
                "message": {
                    "message_id": update_id,
                    "date": int(time.time()),
                    "chat": chat,
                    "from": user,
                    "text": said,
                },
            }
            self.report.messages += 1

            async def post(url: str, update: dict[str, Any] = update) -> httpx.Response:
                async with httpx.AsyncClient(timeout=30) as client:
                    return await client.post(
                        f"{url}/telegram/webhook", json=update, headers={SECRET_HEADER: WEBHOOK_SECRET}
                    )

            if (await self._deliver(post)).is_success:
                self.report.accepted += 1
            await asyncio.sleep(self.random.uniform(*PAUSE))

    # -- the account -------------------------------------------------------------------------------------

    async def _drain_outbox(self, timeout: float = 60) -> None:
        database = make_engine(self.postgres_url, schema=self.schema)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                async with database.connect() as connection:
                    unsent = (
                        await connection.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                    ).scalar_one()
                if not unsent:
                    return
                await asyncio.sleep(1)
            self.report.problems.append(f"{unsent} e-mails still unsent after {timeout:.0f} s")
        finally:
            await database.dispose()

    async def _account(self, api: FakeBotAPI, inbox: Inbox) -> None:
        report = self.report
        database = make_engine(self.postgres_url, schema=self.schema)
        try:
            async with database.connect() as connection:
                stored = (
                    await connection.execute(
                        text(
                            "SELECT c.channel, c.user_id, count(*) FROM transcripts t"
                            " JOIN conversations c ON c.id = t.conversation_id"
                            " WHERE t.direction = 'in' GROUP BY c.channel, c.user_id"
                        )
                    )
                ).all()
                kept = (
                    await connection.execute(
                        text("SELECT delivery_id, replies FROM processed_updates WHERE channel = 'telegram'")
                    )
                ).all()
                emails = (await connection.execute(text("SELECT id, sent_at FROM outbox"))).all()
        finally:
            await database.dispose()
        report.stored_in = sum(count for _, _, count in stored)
        if report.stored_in != report.accepted:
            report.problems.append(f"{report.accepted} messages accepted but {report.stored_in} stored")
        for _, replies in kept:
            report.telegram_replies_expected += len(json.loads(replies)) if replies else 0
        for call in api.sent():
            if APOLOGY in call.text:
                report.apologies += 1
            else:
                report.telegram_replies_sent += 1
        report.telegram_replies_twice = report.telegram_replies_sent - report.telegram_replies_expected
        if report.telegram_replies_twice < 0:
            report.problems.append(f"{-report.telegram_replies_twice} Telegram replies never sent")
        if report.telegram_replies_twice > report.kills:
            report.problems.append("more Telegram replies sent twice than there were crashes")
        report.emails_queued = len(emails)
        ids = Counter(str(message["Message-ID"]) for _, message in inbox.messages)
        report.emails_received = len(ids)
        report.emails_twice = sum(count - 1 for count in ids.values())
        if report.emails_received != report.emails_queued:
            report.problems.append(
                f"{report.emails_queued} e-mails queued, {report.emails_received} received"
            )
        if report.emails_twice > report.kills:
            report.problems.append("more e-mails sent twice than there were crashes")
