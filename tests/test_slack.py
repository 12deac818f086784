"""Help desk staff in Slack: the real slack-bolt app over HTTP on 127.0.0.1, with a local Web API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.app import App
from bot.channels.slack import SlackChannel
from bot.registry.models import Appeal, AuditRequest, Escalation
from bot.server import connect
from tests.fakes.slack_api import TEAM, FakeSlack
from tests.helpers import Chatter, verify
from tests.test_helpdesk import Chats

SECRET = "slack-signing-secret"
STAFF, OPS, DIRECTOR, STRANGER = "USTAFF", "UOPS", "UDIR", "USTRANGER"
WEI = ("10000002", "wei.chen@example.org")
_events = itertools.count(1)


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An Events API envelope as Slack sends it."""
    return {
        "type": "event_callback",
        "team_id": TEAM,
        "api_app_id": "A1",
        "token": "legacy",
        "event_id": event_id or f"Ev{next(_events)}",
        "event_time": int(time.time()),
        "event": event,
    }


@dataclass
class Desk:
    app: App
    slack: FakeSlack
    channel: SlackChannel
    chats: Chats
    http: httpx.AsyncClient

    async def post(
        self, body: bytes, content_type: str, *, secret: str = SECRET, age: int = 0
    ) -> httpx.Response:
        timestamp = str(int(time.time()) - age)
        base = f"v0:{timestamp}:".encode() + body
        signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        headers = {
            "content-type": content_type,
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
        }
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def click(
        self, user: str, action: str, value: str, *, ts: str, channel: str = "CHANDOFF"
    ) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": f"trigger-{action}",
            "channel": {"id": channel},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "message": {"ts": ts, "text": ""},
            "actions": [
                {"action_id": action, "block_id": "b", "value": value, "type": "button", "action_ts": "1"}
            ],
        }
        return await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    async def submit_denial(self, user: str, metadata: str, reason: str) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user},
            "api_app_id": "A1",
            "token": "legacy",
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": "deny_reason",
                "private_metadata": metadata,
                "state": {"values": {"reason": {"text": {"type": "plain_text_input", "value": reason}}}},
            },
        }
        return await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    def event(self, event: dict[str, Any], *, event_id: str | None = None) -> bytes:
        return json.dumps(event_body(event, event_id=event_id)).encode()

    async def command(self, user: str, text: str) -> httpx.Response:
        form = {
            "command": "/registry",
            "text": text,
            "user_id": user,
            "channel_id": "CHANDOFF",
            "team_id": TEAM,
            "token": "legacy",
            "trigger_id": "t",
            "response_url": f"{self.slack.url}/api/respond",
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")


@pytest.fixture
async def desk(make_app: Callable[..., App]) -> AsyncIterator[Desk]:
    holder: dict[str, SlackChannel] = {}

    async def events(request: Request) -> Response:
        return await holder["channel"].handler.handle(request)

    async with FakeSlack(
        names={STAFF: "Ana"}, routes=[Route("/slack/events", events, methods=["POST"])]
    ) as slack:
        app = make_app(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.base_url,
            slack_handoff_channel="CHANDOFF",
            slack_audit_channel="CAUDIT",
            slack_appeal_channel="CAPPEAL",
            slack_staff_ids=[STAFF],
            slack_operations_ids=[OPS],
            slack_director_ids=[DIRECTOR],
        )
        await app.migrate()
        await app.seed_demo()
        chats = Chats()
        app.helpdesk.push = chats
        channel = holder["channel"] = SlackChannel(app.helpdesk, app.settings)
        app.engine.listeners.append(channel.on_event)
        async with httpx.AsyncClient(base_url=slack.url, timeout=30) as http:
            try:
                yield Desk(app, slack, channel, chats, http)
            finally:
                await app.close()


async def escalation(app: App) -> Escalation:
    async with app.sessionmaker() as session:
        return (await session.execute(select(Escalation))).scalar_one()


async def test_a_hand_off_from_question_to_rating(desk: Desk) -> None:
    member = Chatter(desk.app.engine, "ana-member")
    await member.say("quiero hablar con una persona")
    await member.say("Mis documentos fueron rechazados dos veces")
    (posted,) = desk.slack.called("chat.postMessage")
    assert posted.params["channel"] == "CHANDOFF"
    card = json.dumps(posted.blocks, ensure_ascii=False)
    assert "not verified" in card and "Spanish" in card and "rechazados dos veces" in card
    assert posted.action_ids() == ["claim", "resolve"]
    thread = (await escalation(desk.app)).slack_ts
    assert thread

    # the member writes while waiting: it goes to the thread, and the assistant stays quiet
    assert await member.say("¿Me pueden llamar?") == ""
    relayed = desk.slack.called("chat.postMessage")[-1]
    assert relayed.params["thread_ts"] == thread and "¿Me pueden llamar?" in relayed.text

    assert (
        await desk.click(STRANGER, "claim", str((await escalation(desk.app)).id), ts=thread)
    ).status_code == 200
    assert "Only help desk staff" in desk.slack.called("chat.postEphemeral")[-1].text
    await desk.click(STAFF, "claim", str((await escalation(desk.app)).id), ts=thread)
    assert (await escalation(desk.app)).claimed_by == STAFF
    updated = desk.slack.called("chat.update")[-1]
    assert updated.action_ids() == ["resolve"] and f"<@{STAFF}>" in json.dumps(updated.blocks)

    reply = desk.event(
        {
            "type": "message",
            "channel": "CHANDOFF",
            "user": STAFF,
            "text": "Le falta el diploma.",
            "ts": "1700000001.000100",
            "thread_ts": thread,
        }
    )
    assert (await desk.post(reply, "application/json")).status_code == 200
    assert desk.chats.texts("ana-member") == ["Mesa de ayuda (Ana): Le falta el diploma."]

    await desk.click(STAFF, "resolve", str((await escalation(desk.app)).id), ts=thread)
    assert (await escalation(desk.app)).status == "resolved"
    await desk.click(STAFF, "resolve", str((await escalation(desk.app)).id), ts=thread)  # a double click
    assert "already resolved" in desk.slack.called("chat.postEphemeral")[-1].text
    member.last = [desk.chats.pushed[-1][2]]
    assert "Gracias" in await member.press("★★★★★")
    assert (await escalation(desk.app)).rating == 5


async def test_forged_stale_and_replayed_requests_change_nothing(desk: Desk) -> None:
    member = Chatter(desk.app.engine, "m")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    thread = (await escalation(desk.app)).slack_ts
    reply = desk.event(
        {
            "type": "message",
            "channel": "CHANDOFF",
            "user": STAFF,
            "text": "Hello!",
            "ts": "1.2",
            "thread_ts": thread,
        },
        event_id="EvSame",
    )
    assert (await desk.post(reply, "application/json", secret="wrong")).status_code == 401
    assert (await desk.post(reply, "application/json", age=60 * 10)).status_code == 401  # stale timestamp
    assert desk.chats.pushed == []
    assert (await desk.post(reply, "application/json")).status_code == 200
    assert (await desk.post(reply, "application/json")).status_code == 200  # Slack's retry of the same event
    assert len(desk.chats.pushed) == 1
    # a message in the thread from someone who is not staff does not reach the member
    other = desk.event(
        {
            "type": "message",
            "channel": "CHANDOFF",
            "user": STRANGER,
            "text": "hi",
            "ts": "1.3",
            "thread_ts": thread,
        }
    )
    await desk.post(other, "application/json")
    assert len(desk.chats.pushed) == 1


async def test_an_audit_denied_in_a_modal_then_an_appeal_the_director_approves(desk: Desk) -> None:
    member = Chatter(desk.app.engine, "wei")
    await member.say("中文")
    await verify(member, desk.app.sessionmaker, *WEI)
    async with desk.app.sessionmaker() as session:
        audit = (
            await session.execute(select(AuditRequest).where(AuditRequest.reference == "AUD-DEMO-0002"))
        ).scalar_one()
    await desk.channel.post_request("audit", audit.id)
    posted = desk.slack.called("chat.postMessage")[-1]
    assert posted.params["channel"] == "CAUDIT" and posted.action_ids() == ["approve", "deny"]

    await desk.click(STAFF, "deny", f"audit:{audit.id}", ts="1700.1", channel="CAUDIT")
    assert "Operations Team" in desk.slack.called("chat.postEphemeral")[-1].text
    assert desk.slack.called("views.open") == []
    await desk.click(OPS, "deny", f"audit:{audit.id}", ts="1700.1", channel="CAUDIT")
    (opened,) = desk.slack.called("views.open")
    view = (
        json.loads(opened.params["view"]) if isinstance(opened.params["view"], str) else opened.params["view"]
    )
    response = await desk.submit_denial(
        OPS, view["private_metadata"], "The transcript shows 9 units, not 12."
    )
    assert response.status_code == 200
    async with desk.app.sessionmaker() as session:
        denied = await session.get(AuditRequest, audit.id)
    assert denied is not None and (denied.status, denied.decided_by) == ("denied", OPS)
    assert denied.decision_note == "The transcript shows 9 units, not 12."
    assert "未获批准" in desk.chats.texts("wei")[-1]
    await desk.click(OPS, "approve", f"audit:{audit.id}", ts="1700.1", channel="CAUDIT")  # too late: decided
    assert "already denied" in desk.slack.called("chat.postEphemeral")[-1].text

    await member.say("我要申诉")  # asked outright: the appeal starts at once
    await member.press("AUD-DEMO-0002")
    await member.say("我的成绩单上清楚写着12个学分，请再看一下。")
    await member.press("完成")
    await member.press("是")
    appeal_post = desk.slack.called("chat.postMessage")[-1]
    assert appeal_post.params["channel"] == "CAPPEAL" and "AUD-DEMO-0002" in json.dumps(appeal_post.blocks)
    async with desk.app.sessionmaker() as session:
        appeal = (await session.execute(select(Appeal))).scalar_one()
    await desk.click(OPS, "approve", f"appeal:{appeal.id}", ts="1800.1", channel="CAPPEAL")
    assert "Registry Director" in desk.slack.called("chat.postEphemeral")[-1].text
    await desk.click(DIRECTOR, "approve", f"appeal:{appeal.id}", ts="1800.1", channel="CAPPEAL")
    async with desk.app.sessionmaker() as session:
        approved = await session.get(Appeal, appeal.id)
    assert approved is not None and (approved.status, approved.decided_by) == ("approved", DIRECTOR)
    assert "批准了您的申诉" in desk.chats.texts("wei")[-1]


async def test_staff_commands_and_who_may_use_them(desk: Desk) -> None:
    await Chatter(desk.app.engine, "x").say("what is the airspeed of a swallow")
    await desk.command(STRANGER, "queue")
    assert "Only help desk staff" in desk.slack.called("respond")[-1].text
    await desk.command(STAFF, "lookup 10000002")
    assert "AUD-DEMO-0002" in desk.slack.called("respond")[-1].text
    await desk.command(STAFF, "queue")
    assert "No open hand-offs" in desk.slack.called("respond")[-1].text
    await desk.command(STAFF, "stats 7")
    assert "airspeed of a swallow" in desk.slack.called("respond")[-1].text


async def test_rate_limits_are_retried_after_the_pause_slack_asks_for(desk: Desk) -> None:
    desk.slack.rate_limit_next = 1
    member = Chatter(desk.app.engine, "r")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    assert [c.method for c in desk.slack.calls if "postMessage" in c.method] == [
        "chat.postMessage (429)",
        "chat.postMessage",
    ]
    assert (await escalation(desk.app)).slack_ts


async def test_the_members_reply_does_not_wait_for_slack_and_staff_hear_in_order(desk: Desk) -> None:
    desk.slack.hold = asyncio.Event()  # Slack is slow to answer (a rate limit can mean many seconds)
    member = Chatter(desk.app.engine, "hurried")
    await member.say("talk to a person")
    # the engine, as a channel calls it: the confirmation comes back while the card is still on its way
    confirmed = await desk.app.engine.handle(member.inbound("Where is my certificate?"))
    assert "help desk" in confirmed[0].text.lower()
    assert desk.slack.called("chat.postMessage") == []
    relayed = await desk.app.engine.handle(member.inbound("It was a CPR class"))
    assert relayed == []  # a person has the conversation: the assistant is quiet
    desk.slack.hold.set()
    assert await desk.app.engine.settle(timeout=10)
    card, in_thread = desk.slack.called("chat.postMessage")
    assert "Where is my certificate?" in json.dumps(card.blocks)
    assert in_thread.params["thread_ts"] == (await escalation(desk.app)).slack_ts
    assert "It was a CPR class" in in_thread.text


async def test_cards_a_stopped_process_never_posted_are_posted_once(desk: Desk, clock: Any) -> None:
    from datetime import timedelta

    desk.app.engine.listeners.clear()  # the process stops right after storing: nothing reaches Slack
    member = Chatter(desk.app.engine, "lost")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    assert desk.slack.called("chat.postMessage") == []

    # at start: the demo's pending audit request (days old) is posted; the new hand-off is left to the
    # process that stored it, which may still be posting it
    assert await desk.channel.post_missed() == 1
    (request_card,) = desk.slack.called("chat.postMessage")
    assert request_card.params["channel"] == "CAUDIT" and "AUD-DEMO-0002" in request_card.text

    clock.now += timedelta(minutes=5)
    assert await desk.channel.post_missed() == 1
    handoff_card = desk.slack.called("chat.postMessage")[-1]
    assert "Where is my certificate?" in json.dumps(handoff_card.blocks)
    stored = await escalation(desk.app)
    assert stored.slack_channel == "CHANDOFF" and stored.slack_ts

    # another process starting later finds nothing left to post
    assert await SlackChannel(desk.app.helpdesk, desk.app.settings).post_missed() == 0
    assert len(desk.slack.called("chat.postMessage")) == 2


async def test_server_errors_are_retried_and_post_once(desk: Desk) -> None:
    desk.slack.server_error_next = 2
    member = Chatter(desk.app.engine, "e")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    assert [c.method for c in desk.slack.calls if "postMessage" in c.method] == [
        "chat.postMessage (503)",
        "chat.postMessage (503)",
        "chat.postMessage",
    ]


async def test_the_morning_summary_lists_after_hours_hand_offs(desk: Desk, clock: Any) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    clock.now = datetime(2026, 11, 20, 19, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # Friday evening
    member = Chatter(desk.app.engine, "late")
    await member.say("talk to a person")
    await member.say("My certificate is missing")
    assert "Hand-off (after hours)" in json.dumps(desk.slack.called("chat.postMessage")[0].blocks)
    assert await desk.channel.morning_summary(since=clock.now.replace(hour=0))
    summary = desk.slack.called("chat.postMessage")[-1].text
    assert "after hours" in summary and "My certificate is missing" in summary


async def test_a_member_on_telegram_and_staff_in_slack(desk: Desk) -> None:
    """The issue's own story: a Telegram member asks for a person; staff claim, reply, resolve; a rating."""
    from bot.channels.telegram import TelegramChannel
    from tests.fakes.telegram_api import FakeBotAPI
    from tests.test_telegram import Harness, TelegramUser, settings_for

    async with FakeBotAPI() as api:
        telegram = TelegramChannel(desk.app.engine, settings_for(desk.app, api), poll_timeout=1)

        desk.app.engine.listeners.clear()
        connect(desk.app, [telegram, desk.channel])  # the wiring `serve` does
        harness = Harness(telegram, api)
        await telegram.start()
        try:
            member = TelegramUser(harness, user_id=8001, language_code="es")
            await member.say("quiero hablar con una persona")
            await member.say("No encuentro mi certificado de la capacitación")
            card = desk.slack.called("chat.postMessage")[-1]
            assert "No encuentro mi certificado" in json.dumps(card.blocks, ensure_ascii=False)
            found = await escalation(desk.app)
            await desk.click(STAFF, "claim", str(found.id), ts=str(found.slack_ts))

            reply = desk.event(
                {
                    "type": "message",
                    "channel": "CHANDOFF",
                    "user": STAFF,
                    "text": "Hola, lo reviso ahora mismo.",
                    "ts": "1.5",
                    "thread_ts": found.slack_ts,
                }
            )
            await desk.post(reply, "application/json")
            await api.wait_for(lambda: any("lo reviso" in c.text for c in api.sent()))
            assert any("Mesa de ayuda (Ana): Hola, lo reviso ahora mismo." in c.text for c in api.sent())

            assert await member.say("Gracias, espero") == ""  # relayed to the thread, no bot reply
            assert desk.slack.called("chat.postMessage")[-1].text == "Member: Gracias, espero"

            await desk.click(STAFF, "resolve", str(found.id), ts=str(found.slack_ts))
            await api.wait_for(lambda: any("★" in b["text"] for c in api.sent() for b in c.buttons))
            member.last = [c for c in api.sent() if any("★" in b["text"] for b in c.buttons)]
            assert "Gracias por su calificación" in await member.press("★★★★★")
            assert (await escalation(desk.app)).rating == 5
        finally:
            await telegram.stop()


async def test_a_new_audit_request_reaches_its_channel_with_its_documents(desk: Desk) -> None:
    from tests.test_flows import PDF, send_file, start_audit

    member = await start_audit(desk.app, "james", ("10000003", "james.carter@example.org"))
    await member.press("Training")
    await member.say("The 15 hours of my Positive Guidance workshop in March are missing from my profile.")
    await send_file(member, "certificate.pdf", PDF)
    await member.press("Done")
    assert "AUD-2026-00001" in await member.press("Yes")
    posted = [c for c in desk.slack.called("chat.postMessage") if c.params["channel"] == "CAUDIT"]
    (card,) = posted
    assert "AUD-2026-00001" in json.dumps(card.blocks) and "certificate.pdf" in json.dumps(card.blocks)
    (completed,) = desk.slack.called("files.completeUploadExternal")
    assert completed.params["channel_id"] == "CAUDIT" and completed.params["thread_ts"]
    assert list(desk.slack.uploads.values()) == [PDF]


async def test_socket_mode_for_a_help_desk_without_a_public_address(
    make_app: Callable[..., App],
) -> None:
    from tests.fakes.slack_api import FakeSocketMode

    async with FakeSlack(names={STAFF: "Ana"}) as slack, FakeSocketMode() as socket:
        slack.socket = socket
        app = make_app(
            slack_bot_token="xoxb-test",
            slack_app_token="xapp-test",
            slack_api_url=slack.base_url,
            slack_handoff_channel="CHANDOFF",
            slack_staff_ids=[STAFF],
        )
        await app.migrate()
        chats = Chats()
        app.helpdesk.push = chats
        channel = SlackChannel(app.helpdesk, app.settings)
        app.engine.listeners.append(channel.on_event)
        assert channel.routes() == []  # nothing to expose: Slack is reached over the socket
        await channel.start()
        try:
            member = Chatter(app.engine, "socket-member")
            await member.say("talk to a person")
            await member.say("My certificate is missing")
            async with app.sessionmaker() as session:
                thread = (await session.execute(select(Escalation))).scalar_one().slack_ts
            event = event_body(
                {
                    "type": "message",
                    "channel": "CHANDOFF",
                    "user": STAFF,
                    "text": "On it!",
                    "ts": "2.1",
                    "thread_ts": thread,
                }
            )
            ack = await socket.send("events_api", event)
            assert ack["envelope_id"].startswith("env-")
            assert chats.texts("socket-member") == ["Help desk (Ana): On it!"]
            command = {
                "command": "/registry",
                "text": "queue",
                "user_id": STAFF,
                "channel_id": "CHANDOFF",
                "team_id": TEAM,
                "response_url": f"{slack.url}/api/respond",
                "trigger_id": "t",
            }
            await socket.send("slash_commands", command)
            assert "My certificate is missing" in slack.called("respond")[-1].text
        finally:
            await channel.stop()
            await app.close()


async def test_the_summary_is_posted_once_when_the_help_desk_opens_even_by_two_processes(
    desk: Desk, clock: Any
) -> None:
    import asyncio
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    opening = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    clock.now = opening - timedelta(hours=10)  # Sunday night: a hand-off after hours
    member = Chatter(desk.app.engine, "sunday")
    await member.say("talk to a person")
    await member.say("Is my certificate ready?")
    clock.now = opening - timedelta(seconds=0.5)
    # two `serve` processes' Slack channels on one database: the summary is still posted once
    twin = SlackChannel(desk.app.helpdesk, desk.app.settings)
    await desk.channel.start()
    await twin.start()
    try:
        await asyncio.sleep(2.5)
    finally:
        await desk.channel.stop()
        await twin.stop()
    summaries = [c for c in desk.slack.called("chat.postMessage") if c.text.startswith("Good morning")]
    assert len(summaries) == 1 and "Is my certificate ready?" in summaries[0].text
