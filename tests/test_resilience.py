"""Floods, hostile text and a database that goes away or stalls: polite answers, nothing lost, nothing
handled twice, nothing personal in the logs."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.app import App
from bot.channels import console
from bot.channels.web import WebChat, create_asgi
from bot.engine import NotStored
from bot.flows.handoff import HANDOFFS_PER_CLIENT
from bot.registry.models import Escalation, OutboxMessage, TranscriptEntry
from tests.conftest import Clock
from tests.helpers import Chatter, count_rows, database_away, emailed_code, latest_mail, rows

SECRET = b"test-secret-for-the-web-chat-cookie"
MARIA = ("10000001", "maria.lopez@example.org")
JSON = {"Content-Type": "application/json"}
Clients = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def clients(app: App) -> AsyncIterator[Clients]:
    """Web visitors, each with its own cookies, from the client address given (a browser elsewhere)."""
    asgi = create_asgi(app, [WebChat(app, secret=SECRET), _FailingChannel()])
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(asgi.router.lifespan_context(asgi))

        def make(address: str = "203.0.113.7") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=asgi, client=(address, 50000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            stack.push_async_callback(client.aclose)
            return client

        yield make


class _FailingChannel:
    """A channel whose only route has a bug."""

    name = "failing"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def healthy(self) -> bool:
        return True

    def routes(self) -> list[Route]:
        async def broken(request: Request) -> Response:
            raise RuntimeError("a bug that quotes maria.lopez@example.org")

        return [Route("/broken", broken)]


async def post(client: httpx.AsyncClient, delivery_id: str | None = None, **fields: Any) -> httpx.Response:
    return await client.post("/api/messages", json={"delivery_id": delivery_id or uuid.uuid4().hex, **fields})


# -- floods ----------------------------------------------------------------------------------------------


async def test_a_flood_gets_one_polite_answer_then_silence(
    make_app: Callable[..., App], clock: Clock
) -> None:
    app = make_app(rate_limit_per_minute=3)
    await app.migrate()
    try:
        member = Chatter(app.engine, "flood")
        answers = [await member.say(f"olvidé mi contraseña {n}") for n in range(5)]
        assert all("Forgot Password" in answer for answer in answers[:3])
        assert "Espere un minuto" in answers[3]
        assert answers[4] == ""
        assert "Forgot Password" in await Chatter(app.engine, "someone-else").say("forgot my password")
        clock.now += timedelta(seconds=61)
        assert "Forgot Password" in await member.say("olvidé mi contraseña")
    finally:
        await app.close()


async def test_new_visitors_from_one_address_share_its_limit(
    app: App, clients: Clients, clock: Clock
) -> None:
    # 40 posts with no cookie: each is a new visitor, all from one address
    answers = [(await post(clients("198.51.100.9"), text="I forgot my password")).json() for _ in range(40)]
    answered = [a for a in answers if a["replies"] and "Forgot Password" in a["replies"][0]["text"]]
    told = [a for a in answers if a["replies"] and "wait a minute" in a["replies"][0]["text"]]
    assert len(answered) == app.settings.client_rate_limit_per_minute == 30
    assert len(told) == 1 and sum(1 for a in answers if not a["replies"]) == 9
    assert (await post(clients("192.0.2.44"), text="I forgot my password")).json()["replies"]  # others may
    clock.now += timedelta(seconds=61)
    assert (await post(clients("198.51.100.9"), text="I forgot my password")).json()["replies"]


async def test_new_visitors_from_one_address_cannot_flood_the_help_desk(
    app: App, clients: Clients, clock: Clock
) -> None:
    limit = HANDOFFS_PER_CLIENT[0]
    for visitor in range(limit + 3):
        client = clients("198.51.100.23")
        await post(client, text="I need to talk to a person")
        question = f"My certificate number {visitor} is missing from my profile"
        reply = (await post(client, text=question)).json()
        text_ = reply["replies"][0]["text"]
        if visitor < limit:
            assert "help desk" in text_.lower() and "(855) 645-0826" not in text_
        else:
            assert "(855) 645-0826" in text_ and re.search(r"\d{1,2}:\d{2}", text_)  # when to try again
    assert len(await rows(app, Escalation)) == limit


async def ask_for_the_id(member: Chatter) -> None:
    assert "send your Registry ID by e-mail" in await member.say("I forgot my Registry ID")
    assert "e-mail" in await member.say("yes please")


async def test_registry_id_e_mails_are_limited_per_address_in_every_chat(app: App, clock: Clock) -> None:
    # ten chats ask for the ID of one address: one e-mail goes out; the answers do not say whether it is known
    for chat in range(10):
        member = Chatter(app.engine, f"id-seeker-{chat}")
        await ask_for_the_id(member)
        await member.say(MARIA[1])
    assert await count_rows(app, OutboxMessage, recipient=MARIA[1]) == 1
    unknown = Chatter(app.engine, "id-seeker-unknown")
    await ask_for_the_id(unknown)
    first = await unknown.say("nobody@example.org")
    other = Chatter(app.engine, "id-seeker-unknown-2")
    await ask_for_the_id(other)
    limited = await other.say("nobody@example.org")
    known = Chatter(app.engine, "id-seeker-known")
    await ask_for_the_id(known)
    assert await known.say(MARIA[1]) == limited  # the same answer whether or not the address is on file
    assert first != limited
    clock.now += timedelta(minutes=11)
    again = Chatter(app.engine, "id-seeker-later")
    await ask_for_the_id(again)
    assert await again.say(MARIA[1]) == first
    assert (await latest_mail(app.sessionmaker, MARIA[1])) is not None


# -- the database away -----------------------------------------------------------------------------------


async def test_a_message_the_database_could_not_store_is_asked_for_again_and_answered_once(
    app: App, tmp_path: Path
) -> None:
    member = Chatter(app.engine, "patient")
    async with database_away(app, tmp_path):
        with pytest.raises(NotStored) as kept:
            await member.say("olvidé mi contraseña", delivery_id="kept-1")
    (apology,) = kept.value.replies
    assert "problema técnico" in apology.text and "(855) 645-0826" in apology.text
    assert kept.value.lang == "es"
    assert await count_rows(app, TranscriptEntry) == 0  # nothing half-written
    assert "Olvidó su contraseña" in await member.say("olvidé mi contraseña", delivery_id="kept-1")
    again = await app.engine.turn(member.inbound("olvidé mi contraseña", delivery_id="kept-1"))
    assert again.duplicate and "Olvidó su contraseña" in again.replies[0].text  # the same answer, once stored
    assert await count_rows(app, TranscriptEntry, direction="in") == 1


async def test_the_web_page_keeps_a_message_while_the_database_is_away(
    app: App, clients: Clients, tmp_path: Path
) -> None:
    client = clients()
    await client.get("/")
    async with database_away(app, tmp_path):
        response = await post(client, "pending-0001", text="olvidé mi contraseña")
        assert response.status_code == 503 and response.headers["retry-after"]
        body = response.json()
        assert body["pending"] is True and "(855) 645-0826" in body["replies"][0]["text"]
        assert (await client.get("/")).status_code == 200  # the page itself still loads
        assert (await client.get("/api/history")).status_code == 503  # said plainly, never a 500
    answered = await post(client, "pending-0001", text="olvidé mi contraseña")  # the page sends it again
    assert answered.status_code == 200 and "Olvidó su contraseña" in answered.json()["replies"][0]["text"]
    assert answered.json()["lang"] == "es"
    history = (await client.get("/api/history")).json()["messages"]
    assert [entry["from"] for entry in history] == ["member", "assistant"]


async def test_a_stalled_database_gets_the_apology_in_time_and_healthz_says_so(
    make_app: Callable[..., App], clients: Clients, app: App
) -> None:
    if app.database.dialect.name != "postgresql":
        pytest.skip("a table lock held by another session is PostgreSQL's")
    stalled = make_app(turn_timeout=2.0, database_lock_timeout=0.5, database_statement_timeout=1.0)
    asgi = create_asgi(stalled, [WebChat(stalled, secret=SECRET)])
    transport = httpx.ASGITransport(app=asgi, client=("203.0.113.8", 50000))
    async with (
        asgi.router.lifespan_context(asgi),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        async with app.database.connect() as holder:  # another session holds the table
            await holder.execute(text("LOCK TABLE processed_updates IN ACCESS EXCLUSIVE MODE"))
            response = await post(client, "stalled-0001", text="I forgot my password")
            assert response.status_code == 503 and "(855) 645-0826" in response.json()["replies"][0]["text"]
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["database"] == "stalled"
            assert health.json()["status"] == "degraded"
            await holder.rollback()
        response = await post(client, "stalled-0001", text="I forgot my password")
        assert response.status_code == 200 and "Forgot Password" in response.json()["replies"][0]["text"]
        assert (await client.get("/healthz")).json()["database"] == "ok"
    await stalled.close()
    assert await count_rows(app, TranscriptEntry) == 2


# -- hostile text ------------------------------------------------------------------------------------------


async def test_hostile_text_gets_a_clear_answer_and_the_logs_hold_nothing_personal(
    app: App, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = clients()
    raw = b'{"delivery_id": "hostile-0001", "text": "verify my account\\u0000 \\ud800please"}'
    response = await client.post("/api/messages", content=raw, headers=JSON)
    assert response.status_code == 200 and response.json()["replies"]
    for answer in (MARIA[0], MARIA[1] + "\u0000"):
        response = await post(client, text=answer)
        assert response.status_code == 200
    code = await emailed_code(app.sessionmaker, MARIA[1])
    half_an_emoji = b'{"delivery_id": "hostile-0003", "text": "\\ud83d' + code.encode() + b'\\u0000"}'
    response = await client.post("/api/messages", content=half_an_emoji, headers=JSON)
    assert response.status_code == 200 and "now linked" in response.json()["replies"][0]["text"]
    deep = b'{"delivery_id": "hostile-0002", "text": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    response = await client.post("/api/messages", content=deep, headers=JSON)
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    stored = [entry.text for entry in await rows(app, TranscriptEntry, TranscriptEntry.direction == "in")]
    assert stored[0] == "verify my account please"
    assert all("\x00" not in entry and not re.search("[\ud800-\udfff]", entry) for entry in stored)
    failed = await client.get("/broken")  # a bug answers a plain 500, counted and logged without its words
    assert failed.status_code == 500 and failed.json()["error"] == "internal"
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for secret in (MARIA[1], code, "verify my account", "please", "maria.lopez"):
        assert secret not in logged
    metrics = await client.get("/metrics", headers={"Authorization": "Bearer x"})
    assert metrics.status_code == 401  # not from this machine, and no token configured


async def test_metrics_need_the_token_and_count_every_500(make_app: Callable[..., App]) -> None:
    app = make_app(metrics_token=SecretStr("metrics-token-for-tests"))
    await app.migrate()
    asgi = create_asgi(app, [WebChat(app, secret=SECRET), _FailingChannel()])
    local = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=local, base_url="http://testserver") as client:
            assert (await client.get("/broken")).status_code == 500
            assert (await client.get("/broken")).status_code == 500
            assert (await client.get("/metrics")).status_code == 401  # the token is needed, even from here
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-it"})
            assert wrong.status_code == 401
            right = await client.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-tests"})
        assert right.status_code == 200
        assert 'registry_bot_errors_total{kind="http_500"} 2.0' in right.text
    finally:
        await app.close()


async def test_without_a_token_metrics_answer_only_this_machine(app: App, clients: Clients) -> None:
    assert (await clients("198.51.100.1").get("/metrics")).status_code == 401
    assert (await clients("127.0.0.1").get("/metrics")).status_code == 200


async def test_a_database_error_never_quotes_what_a_member_sent(app: App) -> None:
    # the error a failed statement raises is what a traceback would log: without its parameters
    with pytest.raises(Exception) as failed:
        async with app.database.begin() as connection:
            statement = text("INSERT INTO members (id, registry_id) VALUES (:id, :registry_id)")
            await connection.execute(statement, {"id": 1, "registry_id": MARIA[1]})  # id 1 exists
    assert MARIA[1] not in str(failed.value) and "hidden" in str(failed.value).lower()


async def test_the_terminal_keeps_a_line_until_it_is_stored(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "RETRY_FIRST", 0.05)
    chat = console.ConsoleChat(app.engine, user_id="terminal")
    told = io.StringIO()
    async with database_away(app, tmp_path):
        sending = asyncio.create_task(chat.send("olvidé mi contraseña", told=told))
        async with asyncio.timeout(10):
            while "(855) 645-0826" not in told.getvalue():
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # offered again meanwhile, and still waiting
        assert not sending.done()
    async with asyncio.timeout(10):
        replies = await sending
    assert "Olvidó su contraseña" in replies[-1].text
    assert told.getvalue().count("(855) 645-0826") == 1  # the apology once, not at every offer
    assert await count_rows(app, TranscriptEntry, direction="in") == 1
