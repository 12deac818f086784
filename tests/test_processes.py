"""Real `registry-bot serve` processes: two on one PostgreSQL, and one killed with SIGKILL mid-flow."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from bot.config import PROJECT_DIR
from bot.registry.models import ChatLink, OutboxMessage, TranscriptEntry
from bot.registry.session import make_engine, make_sessionmaker
from tests.conftest import POSTGRES_URL, postgres_schema
from tests.test_mail import Inbox
from tests.test_server import free_port

SECRET = "same-secret-for-every-process"


class Serve:
    """One `python -m bot serve` process on a free port."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
        environment.update(env, REGISTRY_BOT_PORT=str(self.port), PYTHONPATH=str(PROJECT_DIR))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"],
            cwd=cwd,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.process.communicate()[1]
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError("serve did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)  # reaps it and closes its pipe

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()


async def say(client: httpx.AsyncClient, delivery: str, text: str = "", payload: str = "") -> dict:  # type: ignore[type-arg]
    body = {"delivery_id": f"delivery-{delivery}", **({"payload": payload} if payload else {"text": text})}
    response = await client.post("/api/messages", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def texts(answer: dict) -> str:  # type: ignore[type-arg]
    return "\n".join(reply["text"] for reply in answer["replies"])


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with postgres_schema() as name:
        yield name


async def test_two_processes_on_one_postgresql_serve_the_same_member(schema: str, tmp_path: Path) -> None:
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = {
        "REGISTRY_BOT_DATABASE_URL": POSTGRES_URL,
        "REGISTRY_BOT_DATABASE_SCHEMA": schema,
        "REGISTRY_BOT_WEB_SECRET": SECRET,
        "REGISTRY_BOT_SMTP_HOST": "127.0.0.1",
        "REGISTRY_BOT_SMTP_PORT": str(smtp_port),
        "REGISTRY_BOT_SMTP_STARTTLS": "false",
    }
    prepare = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")} | env
    for action in ("upgrade", "seed-demo"):  # migrated once, before either process starts
        subprocess.run(
            [sys.executable, "-m", "bot", "db", action], env=prepare, check=True, capture_output=True
        )
    first, second = Serve(env, tmp_path), Serve(env, tmp_path)
    database = make_engine(POSTGRES_URL, schema=schema)
    sessions = make_sessionmaker(database)
    try:
        await first.ready()
        await second.ready()
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            await a.get("/")  # the visitor's cookie, signed with the secret both processes share
            b.cookies = a.cookies
            await say(a, "d1", "verify my account")
            await say(b, "d2", "10000001")  # the flow carries on in the other process
            same = await asyncio.gather(
                say(a, "d3", "maria.lopez@example.org"), say(b, "d3", "maria.lopez@example.org")
            )
            assert sorted(answer["duplicate"] for answer in same) == [False, True]  # handled once
            async with sessions() as session:
                (mail,) = (await session.execute(select(OutboxMessage))).scalars().all()
            code = re.search(r"\b(\d{6})\b", mail.body)
            assert code is not None
            # two turns of the same conversation at once, one in each process: run one after the other
            await asyncio.gather(say(a, "d4", code.group(1)), say(b, "d5", "olvidé mi contraseña"))
        async with sessions() as session:
            links = (await session.execute(select(ChatLink))).scalars().all()
            inbound = (
                select(func.count()).select_from(TranscriptEntry).where(TranscriptEntry.direction == "in")
            )
            assert len(links) == 1 and (await session.execute(inbound)).scalar_one() == 5
        deadline = time.monotonic() + 30
        while not inbox.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(6)  # one more delivery round of each process
        assert len(inbox.messages) == 1  # the outbox is delivered exactly once
        async with sessions() as session:
            (mail,) = (await session.execute(select(OutboxMessage))).scalars().all()
            assert mail.sent_at is not None
    finally:
        first.stop()
        second.stop()
        smtp.stop()
        await database.dispose()


async def test_a_process_killed_mid_flow_resumes_at_the_same_step(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    env = {"REGISTRY_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "REGISTRY_BOT_WEB_SECRET": SECRET}
    serve = Serve(env, tmp_path)
    try:
        await serve.ready()
        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as client:
            await client.get("/")
            cookies = client.cookies
            await say(client, "k1", "verify my account")
            await say(client, "k2", "10000003")
            await say(client, "k3", "james.carter@example.org")
            with sqlite3.connect(db) as connection:
                (body,) = connection.execute("SELECT body FROM outbox ORDER BY id DESC LIMIT 1").fetchone()
            code = re.search(r"\b(\d{6})\b", body)
            assert code is not None
            await say(client, "k4", code.group(1))
            await say(client, "k5", payload="flow:audit-request")
            asked = await say(client, "k6", payload="s:audit-request:proceed:yes")
            assert "What kind of record" in texts(asked)
        serve.kill()  # no goodbye: SIGKILL in the middle of the audit request
        serve = Serve(env, tmp_path)
        await serve.ready()
        async with httpx.AsyncClient(base_url=serve.url, timeout=30, cookies=cookies) as client:
            resumed = await say(client, "k7", payload="s:audit-request:category:education")
            assert "describe exactly what should be reviewed" in texts(resumed)
            again = await say(
                client, "k6", payload="s:audit-request:proceed:yes"
            )  # a redelivery after restart: the first replies again (the page may never have shown
            # them), and the step is not done twice
            assert again["duplicate"] is True and again["replies"] == asked["replies"]
    finally:
        serve.stop()
