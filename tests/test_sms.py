"""The SMS channel end to end: Twilio's signed webhook in, the real twilio client against a local REST API."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from bot.app import App
from bot.channels.sms import SIGNATURE_HEADER, SmsChannel, is_gsm, segments, shorten, sms_text
from bot.messages import Choice, Link, Reply
from bot.registry.models import (
    AuditRequest,
    Document,
    Enrollment,
    Member,
    SmsOptOut,
    TranscriptEntry,
)
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioAPI
from tests.helpers import count_rows, database_away, emailed_code, one, rows

BASE = "https://bot.example.org"
SENDER = "+15550001000"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
_sids = itertools.count(1)


def settings_for(app: App, api: FakeTwilioAPI, **overrides: Any) -> Any:
    return app.settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr(AUTH_TOKEN),
            "twilio_from": SENDER,
            "twilio_api_url": api.base_url,
            **overrides,
        }
    )


class Phone:
    """A member texting the registry's number: Twilio signs and posts each message to the webhook."""

    def __init__(self, client: httpx.AsyncClient, api: FakeTwilioAPI, app: App, number: str) -> None:
        self.client, self.api, self.app, self.number = client, api, app, number
        self.last: list[str] = []

    def form(self, body: str, *, sid: str | None = None, **extra: str) -> dict[str, str]:
        sid = sid or f"SM{next(_sids):032x}"
        return {"From": self.number, "To": SENDER, "Body": body, "MessageSid": sid, "NumMedia": "0", **extra}

    async def post(self, form: dict[str, str], *, url: str = f"{BASE}/sms/webhook", signed: str = "") -> int:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(signed or url, form)
        before = len(self.api.to(self.number))
        response = await self.client.post(url, data=form, headers={SIGNATURE_HEADER: signature})
        assert await self.app.engine.settle(timeout=10)
        self.last = self.api.to(self.number)[before:]
        if response.status_code == 200:
            assert response.text.endswith("<Response/>")
        return response.status_code

    async def text(self, body: str, **extra: str) -> str:
        assert await self.post(self.form(body, **extra)) == 200
        return "\n".join(self.last)

    def number_of(self, label_part: str) -> str:
        for message in self.last:
            for line in message.split("\n"):
                found = re.match(r"(\d+)\. (.*)", line)
                if found and label_part.lower() in found.group(2).lower():
                    return found.group(1)
        raise AssertionError(f"no choice {label_part!r} in {self.last}")

    async def choose(self, label_part: str) -> str:
        return await self.text(self.number_of(label_part))


@pytest.fixture
async def api() -> AsyncIterator[FakeTwilioAPI]:
    async with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
async def channel(app: App, api: FakeTwilioAPI) -> AsyncIterator[SmsChannel]:
    sms = SmsChannel(app.engine, settings_for(app, api))
    await sms.start()
    try:
        yield sms
    finally:
        await sms.stop()


@pytest.fixture
async def client(channel: SmsChannel) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Starlette(routes=channel.routes()))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def phone(client: httpx.AsyncClient, api: FakeTwilioAPI, app: App, number: str) -> Phone:
    return Phone(client, api, app, number)


# -- segments and shortening ---------------------------------------------------------------------------------


def test_segments_count_gsm7_and_ucs2() -> None:
    assert segments("") == 0
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # an extension character counts two
    assert segments("ñ" * 160) == 1  # in the GSM alphabet
    assert segments("á" * 70) == 1 and segments("á" * 71) == 2  # not in it: the message is UCS-2
    assert segments("退" * 70) == 1 and segments("退" * 134) == 2 and segments("退" * 135) == 3
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2  # a surrogate pair counts two


def test_a_chinese_reply_is_counted_as_ucs2_and_shortened() -> None:
    text = (
        "**如何退出已报名的培训**\n\n"
        + "如果您通过培训日历报名了培训，但去不了了，通常可以自己取消报名。" * 6
    )
    text += "\n\n" + "1. 登录登记系统个人档案。" * 10 + "\n\n需要我现在帮您办理吗？"
    reply = Reply(
        text,
        choices=(Choice("是的，现在开始", "flow:withdraw", "yes"), Choice("如何查找并报名培训", "topic:x")),
        links=(Link("在登记系统网站上了解更多", "https://www.caregistry.org/index.cfm"),),
    )
    message = sms_text(reply)
    assert not is_gsm(message) and segments(message) <= 3 < segments(text)
    assert message.startswith("如何退出已报名的培训\n如果您通过")  # the title and the first paragraph
    assert "登录登记系统" not in message and "…" in message  # the steps left out, the summary cut
    assert "需要我现在帮您办理吗？\n1. 是的，现在开始\n2. 如何查找并报名培训" in message
    assert message.endswith("https://www.caregistry.org/index.cfm")


def test_shorten_keeps_what_fits_and_never_drops_choices() -> None:
    assert shorten("Short.", ["https://x.example"], 1) == "Short.\nhttps://x.example"
    long = "Title\n\n" + "word " * 200 + "\n\nMore text.\n\nShall we?"
    short = shorten(long, ["https://x.example/a"], 2, choices=["1. Yes"])
    assert segments(short) <= 2 and short.startswith("Title\nword") and "..." in short
    assert short.endswith("Shall we?\n1. Yes\nhttps://x.example/a") and "More text" not in short
    assert shorten("x " * 500, [], 1, choices=["1. " + "y" * 200]) == "1. " + "y" * 200


# -- a withdrawal by typing numbers --------------------------------------------------------------------------


async def test_a_member_withdraws_by_text(app: App, api: FakeTwilioAPI, client: httpx.AsyncClient) -> None:
    wei = phone(client, api, app, "+14155550101")
    article = await wei.text("how do I withdraw from a training?")
    (message,) = wei.last
    assert segments(message) <= 3 and "**" not in message  # shortened, plain text
    assert re.search(r"^1\. Yes, start now$", message, re.M) and "https://www.caregistry.org" in message
    assert "Registry ID" in await wei.text(wei.number_of("Yes, start now"))
    assert "mail" in await wei.text("10000002")
    assert "code" in await wei.text("wei.chen@example.org")
    text = await wei.text(await emailed_code(app.sessionmaker, "wei.chen@example.org"))
    assert "linked" in text.lower() and re.search(r"^\d+\. ", text, re.M)
    assert "about to withdraw" in (await wei.choose("家庭托儿中心")).lower()  # its title is Chinese
    assert "done" in (await wei.choose("Yes")).lower()
    async with app.sessionmaker() as session:
        statuses = (
            await session.execute(
                select(Enrollment.status)
                .join(Member, Enrollment.member_id == Member.id)
                .where(Member.registry_id == "10000002")
            )
        ).scalars()
        assert "withdrawn" in list(statuses)
    assert article and all(m.sender == SENDER for m in api.sent)


# -- an audit request with an MMS document -------------------------------------------------------------------


async def test_an_audit_request_with_an_mms_document(
    app: App, api: FakeTwilioAPI, client: httpx.AsyncClient
) -> None:
    james = phone(client, api, app, "+14155550102")
    await james.text("I want to request an audit")
    await james.text("10000003")
    await james.text("james.carter@example.org")
    await james.text(await emailed_code(app.sessionmaker, "james.carter@example.org"))
    await james.choose("Continue")
    await james.choose("Training")
    await james.text("The 2025 workshop on literacy is missing from my training hours report.")
    sid = f"MM{next(_sids):032x}"
    url = api.add_media(sid, PDF, "application/pdf")
    form = james.form("", sid=sid, NumMedia="1", MediaUrl0=url, MediaContentType0="application/pdf")
    assert await james.post(form) == 200
    assert "Received:" in "\n".join(james.last) and len(api.downloads) == 1
    await james.choose("Done")
    assert "AUD-2026-00001" in await james.choose("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    (stored,) = await rows(app, Document, Document.audit_request_id == audit.id)
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest() and stored.filename.endswith(".pdf")


# -- staff replies, STOP and START, HELP ---------------------------------------------------------------------


async def test_a_staff_reply_is_pushed_and_stop_is_honoured_until_start(
    app: App, api: FakeTwilioAPI, client: httpx.AsyncClient, channel: SmsChannel
) -> None:
    ana = phone(client, api, app, "+14155550103")
    await ana.text("hello")
    assert await channel.push(ana.number, [Reply("A person from the help desk: **we fixed it**.")])
    assert api.to(ana.number)[-1] == "A person from the help desk: we fixed it."
    assert not await channel.push("not-a-number", [Reply("x")])

    sent = len(api.sent)
    assert await ana.text("STOP") == ""
    assert await count_rows(app, SmsOptOut, number=ana.number) == 1
    assert await ana.text("hello again") == "" and await ana.text("HELP") == ""
    assert not await channel.push(ana.number, [Reply("A decision")])
    assert len(api.sent) == sent  # nothing at all

    assert "again" in await ana.text("start")
    assert await count_rows(app, SmsOptOut) == 0
    assert await channel.push(ana.number, [Reply("A decision")])
    assert "(855) 645-0826" in await ana.text("HELP")
    assert "Responda ALTO" in await ana.text("ayuda")
    assert await ana.text("Alto") == "" and not await channel.push(ana.number, [Reply("x")])


# -- signatures, redeliveries, the database away -------------------------------------------------------------


async def test_a_forged_signature_is_refused(app: App, api: FakeTwilioAPI, client: httpx.AsyncClient) -> None:
    ana = phone(client, api, app, "+14155550104")
    form = ana.form("hello")
    assert (await client.post("/sms/webhook", data=form)).status_code == 403
    forged = {
        SIGNATURE_HEADER: RequestValidator("another-token").compute_signature(f"{BASE}/sms/webhook", form)
    }
    assert (await client.post("/sms/webhook", data=form, headers=forged)).status_code == 403
    assert await ana.post(form, signed="https://elsewhere.example/sms/webhook") == 403
    assert api.sent == [] and await count_rows(app, TranscriptEntry) == 0


async def test_behind_a_proxy_the_public_url_is_signed(app: App, api: FakeTwilioAPI) -> None:
    sms = SmsChannel(app.engine, settings_for(app, api, public_url="https://help.example.org/"))
    await sms.start()
    try:
        transport = httpx.ASGITransport(app=Starlette(routes=sms.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8080") as inside:
            ana = phone(inside, api, app, "+14155550105")
            form = ana.form("hello")
            assert (
                await ana.post(form, url="/sms/webhook", signed="https://help.example.org/sms/webhook") == 200
            )
            assert ana.last and sms.healthy()
    finally:
        await sms.stop()
    assert not sms.healthy()


async def test_a_redelivered_message_is_handled_once(
    app: App, api: FakeTwilioAPI, client: httpx.AsyncClient
) -> None:
    ana = phone(client, api, app, "+14155550106")
    form = ana.form("I forgot my password")
    assert await ana.post(form) == 200 and await ana.post(form) == 200
    first = api.to(ana.number)
    assert len(first) == 1 and "forgotten password" in first[0]
    # a new process does not know it answered: it sends the stored replies again, and nothing else happens
    restarted = SmsChannel(app.engine, settings_for(app, api))
    await restarted.start()
    try:
        transport = httpx.ASGITransport(app=Starlette(routes=restarted.routes()))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as second:
            assert await phone(second, api, app, ana.number).post(form) == 200
    finally:
        await restarted.stop()
    assert api.to(ana.number) == first + first
    assert await count_rows(app, TranscriptEntry) == 2


async def test_a_message_that_cannot_be_stored_is_asked_again(
    app: App, api: FakeTwilioAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    ana = phone(client, api, app, "+14155550107")
    form = ana.form("olvidé mi contraseña")
    async with database_away(app, tmp_path):
        for _ in range(3):
            assert await ana.post(form) == 503
    (apology,) = api.to(ana.number)  # once, not at every attempt
    assert "(855) 645-0826" in apology
    assert await count_rows(app, TranscriptEntry) == 0
    assert await ana.post(form) == 200
    assert len(api.to(ana.number)) == 2 and await count_rows(app, TranscriptEntry) == 2


async def test_healthz_reports_sms_and_metrics_count_its_turns(app: App, api: FakeTwilioAPI) -> None:
    from bot.channels.web import create_asgi

    asgi = create_asgi(app, [SmsChannel(app.engine, settings_for(app, api))])
    transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 50000))
    async with (
        asgi.router.lifespan_context(asgi),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        health = (await http.get("/healthz")).json()
        assert health["channels"] == {"sms": "ok"} and health["status"] == "ok"
        answer = await phone(http, api, app, "+15551239001").text("I forgot my password")
        assert "forgotten password" in answer  # the summary and its link, shortened for SMS
        metrics = (await http.get("/metrics")).text
    assert 'registry_bot_turns_total{channel="sms",outcome="answer"} 1.0' in metrics
