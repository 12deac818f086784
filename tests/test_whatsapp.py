"""The WhatsApp channel end to end: signed webhooks in, the real pywa client against a local Graph API."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette

from bot.app import App
from bot.channels.web import create_asgi
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel, shorten
from bot.messages import Choice, Reply
from bot.registry.models import (
    AuditRequest,
    Conversation,
    Document,
    Enrollment,
    Escalation,
    Member,
    Training,
    TranscriptEntry,
)
from bot.server import connect
from tests.conftest import Clock
from tests.fakes.whatsapp_api import APP_SECRET, PHONE_ID, FakeGraphAPI, Sent, signed
from tests.helpers import count_rows, database_away, emailed_code, latest_mail, one, rows

WEI = ("10000002", "wei.chen@example.org")
JAMES = ("10000003", "james.carter@example.org")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
VERIFY_TOKEN = "verify-token-for-tests"
TEMPLATE = "help_desk_reply"

_ids = itertools.count(1)


def settings_for(app: App, api: FakeGraphAPI, **overrides: Any) -> Any:
    return app.settings.model_copy(
        update={
            "whatsapp_token": SecretStr(api.token),
            "whatsapp_phone_number_id": PHONE_ID,
            "whatsapp_app_secret": SecretStr(APP_SECRET),
            "whatsapp_verify_token": SecretStr(VERIFY_TOKEN),
            "whatsapp_api_url": api.url,
            **overrides,
        }
    )


class Phone:
    """A WhatsApp user writing to the business number: Meta's webhook calls, signed, and what came back."""

    def __init__(self, client: httpx.AsyncClient, api: FakeGraphAPI, clock: Clock, wa_id: str) -> None:
        self.client, self.api, self.clock, self.wa_id = client, api, clock, wa_id
        self.last: list[Sent] = []

    def message(self, kind: str, content: dict[str, Any], *, wamid: str | None = None) -> dict[str, Any]:
        return {
            "from": self.wa_id,
            "id": wamid or f"wamid.in.{next(_ids)}",
            "timestamp": str(int(self.clock.now.timestamp())),
            "type": kind,
            kind: content,
        }

    @staticmethod
    def body(*messages: dict[str, Any], statuses: list[dict[str, Any]] | None = None) -> bytes:
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
        }
        if messages:
            value["contacts"] = [{"profile": {"name": "Member"}, "wa_id": messages[0]["from"]}]
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = statuses
        change = {"field": "messages", "value": value}
        return json.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
        ).encode()

    async def post(self, message: dict[str, Any], *, status: int = 200) -> str:
        before = len(self.api.sent)
        body = self.body(message)
        response = await self.client.post(WEBHOOK_PATH, content=body, headers=signed(body))
        assert response.status_code == status
        self.last = [sent for sent in self.api.sent[before:] if sent.to == self.wa_id]
        return "\n".join(sent.text for sent in self.last)

    async def say(self, text: str, **options: Any) -> str:
        return await self.post(self.message("text", {"body": text}), **options)

    def button(self, title_part: str) -> tuple[Sent, str]:
        for sent in self.last:
            for title, choice_id in sent.buttons:
                if title_part in title:
                    return sent, choice_id
        raise AssertionError(f"no button {title_part!r} among {[b for s in self.last for b in s.buttons]}")

    async def press(self, title_part: str) -> str:
        sent, choice_id = self.button(title_part)
        title = next(title for title, found in sent.buttons if found == choice_id)
        kind = "button_reply" if "buttons" in sent.body["interactive"]["action"] else "list_reply"
        return await self.post(
            self.message("interactive", {"type": kind, kind: {"id": choice_id, "title": title}})
        )

    async def verify(self, app: App, registry_id: str, email: str) -> str:
        await self.say(registry_id)
        await self.say(email)
        return await self.say(await emailed_code(app.sessionmaker, email))


@pytest.fixture
async def api() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI() as fake:
        yield fake


async def started(app: App, api: FakeGraphAPI, **overrides: Any) -> WhatsAppChannel:
    channel = WhatsAppChannel(app.engine, settings_for(app, api, **overrides))
    await channel.start()
    return channel


@pytest.fixture
async def channel(app: App, api: FakeGraphAPI) -> AsyncIterator[WhatsAppChannel]:
    channel = await started(app, api, whatsapp_template=TEMPLATE)
    try:
        yield channel
    finally:
        await channel.stop()


@pytest.fixture
async def client(channel: WhatsAppChannel) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Starlette(routes=channel.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def phone(client: httpx.AsyncClient, api: FakeGraphAPI, clock: Clock, wa_id: str) -> Phone:
    return Phone(client, api, clock, wa_id)


# -- the errands --------------------------------------------------------------------------------------------


async def test_a_member_withdraws_with_reply_buttons(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    wei = phone(client, api, clock, "15551230001")
    text = await wei.say("I want to withdraw from a training")
    assert "Registry ID" in text
    text = await wei.verify(app, *WEI)
    assert "linked" in text
    (choices,) = [sent for sent in wei.last if sent.buttons]
    assert choices.body["interactive"]["type"] == "list"  # labels too long for buttons: a list shows them
    assert all(len(title) <= 24 for title, _ in choices.buttons)
    await wei.press("家庭托儿中心")
    (confirm,) = [sent for sent in wei.last if sent.buttons]
    assert confirm.body["interactive"]["type"] == "button"
    text = await wei.press("Yes")
    assert "Done" in text or "withdrawn" in text.lower()
    async with app.sessionmaker() as session:
        status = (
            await session.execute(
                select(Enrollment.status)
                .join(Training, Enrollment.training_id == Training.id)
                .join(Member, Enrollment.member_id == Member.id)
                .where(Member.registry_id == WEI[0], Training.key == "T-406")
            )
        ).scalar_one()
    assert status == "withdrawn"
    assert await count_rows(app, Conversation, channel="whatsapp", user_id="15551230001") == 1


async def test_an_audit_request_with_a_document(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    james = phone(client, api, clock, "15551230002")
    await james.say("I want to request an audit")
    await james.verify(app, *JAMES)
    await james.press("Continue")
    await james.press("Training")
    await james.say("The 2025 workshop on literacy is missing from my training hours report.")
    api.add_media("media-1", PDF, "application/pdf")
    document = {"id": "media-1", "filename": "cert.pdf", "mime_type": "application/pdf", "sha256": "x"}
    assert "Received: cert.pdf" in await james.post(james.message("document", document))
    assert api.media_lookups == ["media-1"] and api.downloads == ["media-1"]
    await james.press("Done")
    assert "AUD-2026-00001" in await james.press("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    (stored,) = await rows(app, Document, Document.audit_request_id == audit.id)
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest() and stored.filename == "cert.pdf"


async def test_a_file_whatsapp_cannot_give_is_explained(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    member = phone(client, api, clock, "15551230003")
    text = await member.post(member.message("image", {"id": "gone", "mime_type": "image/jpeg"}))
    assert "from WhatsApp" in text and api.downloads == []


# -- staff replies and the 24-hour window ------------------------------------------------------------------


async def test_a_staff_reply_within_the_window_and_after_it(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, channel: WhatsAppChannel, clock: Clock
) -> None:
    connect(app, [channel])
    member = phone(client, api, clock, "15551230004")
    await member.say("talk to a person")
    await member.say("My documents were rejected")
    escalation = await one(app, Escalation)
    outcome = await app.helpdesk.reply(escalation.id, "Dana", "We are looking at it.")
    assert outcome.ok
    assert "We are looking at it." in api.to("15551230004")[-1].text  # a plain message: the window is open

    clock.now += timedelta(hours=25)
    outcome = await app.helpdesk.reply(escalation.id, "Dana", "It is fixed now.\nPlease check.")
    assert outcome.ok
    template = api.to("15551230004")[-1]
    assert template.type == "template" and template.body["template"]["name"] == TEMPLATE
    assert template.body["template"]["language"]["code"] == "en"
    (component,) = template.body["template"]["components"]
    assert "It is fixed now. Please check." in component["parameters"][0]["text"]

    # a new message opens the window again
    await member.say("thank you")
    assert await channel.push("15551230004", [Reply("plain again")])
    assert api.to("15551230004")[-1].type == "text"
    # when WhatsApp says the window closed already (its clock, not ours), the template goes instead
    api.failures = [(400, 131047)]
    assert await channel.push("15551230004", [Reply("one more")])
    assert api.to("15551230004")[-1].type == "template"


async def test_without_a_template_a_late_reply_goes_by_e_mail_and_staff_are_told(
    app: App, api: FakeGraphAPI, clock: Clock
) -> None:
    channel = await started(app, api)
    try:
        connect(app, [channel])
        transport = httpx.ASGITransport(app=Starlette(routes=channel.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            member = phone(http, api, clock, "15551230005")
            await member.say("talk to a person")
            await member.say("我的文件一直没有审核")
            james = phone(http, api, clock, "15551230006")  # a verified member asks too
            await james.say("verify my account")
            assert "linked" in await james.verify(app, *JAMES)
            await james.say("talk to a person")
            await james.say("My certificate is missing from my profile")
        first, second = sorted(await rows(app, Escalation), key=lambda row: row.id)
        clock.now += timedelta(hours=24, minutes=1)
        sent = len(api.sent)
        outcome = await app.helpdesk.reply(first.id, "Dana", "Checked.")
        assert not outcome.ok and "not verified" in outcome.message  # kept for when they come back
        outcome = await app.helpdesk.reply(second.id, "Dana", "Your certificate is back on your profile.")
        assert outcome.ok and "by e-mail" in outcome.message
        mail = await latest_mail(app.sessionmaker, JAMES[1])
        assert mail is not None and "Your certificate is back on your profile." in mail.body
        assert "help desk" in mail.subject
        resolved = await app.helpdesk.resolve(second.id, "UDANA")
        assert resolved.ok and "not asked to rate" in resolved.message  # staff know
        assert len(api.sent) == sent
        assert not await channel.push("15551239999", [Reply("never wrote")])
    finally:
        await channel.stop()


# -- the webhook -----------------------------------------------------------------------------------------


async def test_the_verification_request(client: httpx.AsyncClient) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = await client.get(WEBHOOK_PATH, params=query)
    assert answer.status_code == 200 and answer.text == "1158201444"
    wrong = {**query, "hub.verify_token": "guess"}
    assert (await client.get(WEBHOOK_PATH, params=wrong)).status_code == 403
    assert (await client.get(WEBHOOK_PATH, params={**query, "hub.mode": "unsubscribe"})).status_code == 403


async def test_a_forged_signature_is_refused(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    member = phone(client, api, clock, "15551230006")
    body = member.body(member.message("text", {"body": "hello"}))
    forged = signed(body, "not-the-app-secret")
    assert (await client.post(WEBHOOK_PATH, content=body, headers=forged)).status_code == 401
    assert (await client.post(WEBHOOK_PATH, content=body)).status_code == 401
    tampered = body.replace(b"hello", b"hullo")
    assert (await client.post(WEBHOOK_PATH, content=tampered, headers=signed(body))).status_code == 401
    assert api.sent == [] and await count_rows(app, Conversation) == 0
    statuses = member.body(statuses=[{"id": "wamid.out.1", "status": "read", "recipient_id": "15551230006"}])
    assert (await client.post(WEBHOOK_PATH, content=statuses, headers=signed(statuses))).status_code == 200
    assert api.sent == []


async def test_a_redelivered_message_is_handled_once(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, channel: WhatsAppChannel, clock: Clock
) -> None:
    member = phone(client, api, clock, "15551230007")
    message = member.message("text", {"body": "verify my account"}, wamid="wamid.same")
    first = await member.post(message)
    assert first and await member.post(message) == ""  # this process sent its replies already
    assert await count_rows(app, TranscriptEntry) == 3  # the message and its two replies, once

    # a process that never sent them (the first one died before it could) sends the kept replies
    restarted = await started(app, api)
    try:
        transport = httpx.ASGITransport(app=Starlette(routes=restarted.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert await phone(http, api, clock, "15551230007").post(message) == first
    finally:
        await restarted.stop()
    assert await count_rows(app, TranscriptEntry) == 3


async def test_replies_whatsapp_did_not_take_are_sent_with_the_redelivery(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    member = phone(client, api, clock, "15551230008")
    message = member.message("text", {"body": "I forgot my password"})
    api.failures = [(503, 131000)]
    await member.post(message, status=503)  # Meta delivers it again
    assert "Forgot Password" in await member.post(message)
    assert await count_rows(app, TranscriptEntry) == 2


async def test_more_than_three_choices_make_a_list(
    api: FakeGraphAPI, client: httpx.AsyncClient, channel: WhatsAppChannel, clock: Clock
) -> None:
    member = phone(client, api, clock, "15551230009")
    await member.say("help")
    (menu,) = [sent for sent in member.last if sent.buttons]
    action = menu.body["interactive"]["action"]
    assert menu.body["interactive"]["type"] == "list" and action["button"] == "Choose"
    assert 3 < len(menu.buttons) <= 10 and all(len(title) <= 24 for title, _ in menu.buttons)
    assert "Withdrawing from a training" in await member.press("Withdraw")  # a row pressed is a choice

    # more than ten: lists of ten; a label shortened in the title is whole in the description
    choices = [Choice(f"Training number {n} on family child care nutrition", f"c:{n}") for n in range(12)]
    first, second = channel.lists(choices, "es")
    (rows_one,), (rows_two,) = ([list(section.rows) for section in kept.sections] for kept in (first, second))
    assert len(rows_one) == 10 and len(rows_two) == 2
    row = rows_one[0]
    assert row.title == "Training number 0 on…" and row.description == choices[0].label
    assert first.button_title == "Elegir"

    three = [Choice("Yes, withdraw me", "y"), Choice("No", "n"), Choice("Something else", "x" * 300)]
    buttons = channel.reply_buttons(three)
    assert buttons is not None and [button.title for button in buttons] == [c.label for c in three]
    long_id = str(buttons[2].callback_data)
    assert len(long_id) <= 200 and channel.payload_of(long_id) == "x" * 300
    assert channel.payload_of("#" + "0" * 32) is None  # a token this process does not know: stale
    assert channel.reply_buttons([*three[:2], Choice("A label longer than twenty", "z")]) is None


def test_labels_are_shortened_between_words() -> None:
    assert shorten("Nutrition and Health in Family Child Care", 20) == "Nutrition and…"
    assert shorten("短标签", 20) == "短标签"
    assert len(shorten("家庭托儿中心的营养与健康培训课程第二部分内容", 20)) == 20


# -- the database away, health and metrics -------------------------------------------------------------------


async def test_a_message_waits_while_the_database_is_away(
    app: App, api: FakeGraphAPI, client: httpx.AsyncClient, clock: Clock, tmp_path: Path
) -> None:
    member = phone(client, api, clock, "15551230010")
    message = member.message("text", {"body": "olvidé mi contraseña"})
    async with database_away(app, tmp_path):
        for _ in range(3):  # Meta tries again while the answer is not 2xx
            await member.post(message, status=503)
    (apology,) = api.to("15551230010")  # said once, not at every attempt
    assert "(855) 645-0826" in apology.text
    assert await count_rows(app, TranscriptEntry) == 0
    assert "contraseña" in await member.post(message)  # the database is back: handled, then confirmed
    entries, sent = await count_rows(app, TranscriptEntry), len(api.to("15551230010"))
    assert entries >= 2
    await member.post(message)  # delivered once more: nothing new
    assert await count_rows(app, TranscriptEntry) == entries and len(api.to("15551230010")) == sent


async def test_health_and_metrics_name_the_channel(app: App, api: FakeGraphAPI, clock: Clock) -> None:
    channel = WhatsAppChannel(app.engine, settings_for(app, api))
    asgi = create_asgi(app, [channel])
    transport = httpx.ASGITransport(app=asgi)
    async with (
        asgi.router.lifespan_context(asgi),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        assert (await http.get("/healthz")).json()["channels"]["whatsapp"] == "ok"
        assert await phone(http, api, clock, "15551230011").say("hello")
        metrics = (await http.get("/metrics")).text
    assert 'channel="whatsapp"' in metrics
    assert not channel.healthy()
