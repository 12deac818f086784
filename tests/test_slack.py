"""Help desk staff in Slack: the real slack-bolt app over HTTP on 127.0.0.1, with a local Web API."""

from __future__ import annotations

import asyncio
import contextlib
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

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        """Send an interaction payload (a click, a menu choice, a form) as Slack posts it."""
        common = {"team": {"id": TEAM}, "api_app_id": "A1", "token": "legacy"}
        body = urlencode({"payload": json.dumps(common | payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def act(
        self, user: str, action: dict[str, Any], *, ts: str, channel: str = "CHANDOFF"
    ) -> httpx.Response:
        """One ``block_actions`` element used on the message ``ts``."""
        return await self.interact(
            {
                "type": "block_actions",
                "user": {"id": user},
                "trigger_id": f"trigger-{action['action_id']}",
                "channel": {"id": channel},
                "container": {"type": "message", "message_ts": ts, "channel_id": channel},
                "message": {"ts": ts, "text": ""},
                "actions": [{"block_id": "b", "action_ts": "1", **action}],
            }
        )

    async def click(
        self, user: str, action: str, value: str, *, ts: str, channel: str = "CHANDOFF"
    ) -> httpx.Response:
        button = {"action_id": action, "value": value, "type": "button"}
        return await self.act(user, button, ts=ts, channel=channel)

    async def submit(
        self, user: str, callback: str, metadata: str, values: dict[str, Any] | None
    ) -> httpx.Response:
        """Submit a modal (``values`` None: a view without its state)."""
        view = {"id": "V1", "type": "modal", "callback_id": callback, "private_metadata": metadata}
        if values is not None:
            view["state"] = {"values": values}
        return await self.interact({"type": "view_submission", "user": {"id": user}, "view": view})

    async def submit_denial(self, user: str, metadata: str, reason: str | None) -> httpx.Response:
        """Submit the deny modal (``reason`` None: a view without its state)."""
        values = {"reason": {"text": {"type": "plain_text_input", "value": reason}}}
        return await self.submit(user, "deny_reason", metadata, values if reason is not None else None)

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


@contextlib.asynccontextmanager
async def open_desk(
    make_app: Callable[..., App], registry: str = "ca", **settings: Any
) -> AsyncIterator[Desk]:
    """The assistant of ``registry`` with its Slack app served on the local Slack's loopback server."""
    holder: dict[str, SlackChannel] = {}

    async def events(request: Request) -> Response:
        return await holder["channel"].handler.handle(request)

    async with FakeSlack(
        names={STAFF: "Ana"}, routes=[Route("/slack/events", events, methods=["POST"])]
    ) as slack:
        app = make_app(
            registry,
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.base_url,
            slack_handoff_channel="CHANDOFF",
            slack_audit_channel="CAUDIT",
            slack_appeal_channel="CAPPEAL",
            slack_staff_ids=[STAFF],
            slack_operations_ids=[OPS],
            slack_director_ids=[DIRECTOR],
            **settings,
        )
        await app.migrate()
        await app.seed_demo()
        chats = Chats()
        app.helpdesk.push = chats
        channel = holder["channel"] = SlackChannel(app.helpdesk, app.settings, app.gaps)
        app.engine.listeners.append(channel.on_event)
        async with httpx.AsyncClient(base_url=slack.url, timeout=30) as http:
            try:
                yield Desk(app, slack, channel, chats, http)
            finally:
                await app.close()


@pytest.fixture
async def desk(make_app: Callable[..., App]) -> AsyncIterator[Desk]:
    async with open_desk(make_app) as opened:
        yield opened


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
            assert "Gracias por su valoración" in await member.press("★★★★★")
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


# -- a member's words, staff input and Slack's limits -------------------------------------------------------

PING = "<!channel> urgent & <@U0ADMIN> <https://evil.example|click here>"


def assert_no_ping(text: str) -> None:
    """Slack shows ``text`` as words: nothing in it notifies a channel or a person, or links anywhere."""
    assert "<!channel>" not in text and "<@U0ADMIN>" not in text and "<https://" not in text, text
    assert "&lt;!channel&gt;" in text, text


async def test_a_members_words_cannot_ping_anyone_in_slack(desk: Desk, clock: Any) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import update

    from bot.registry.models import Member

    clock.now = datetime(2026, 11, 20, 19, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # after hours
    member = Chatter(desk.app.engine, "pinger")
    await member.say("talk to a person")
    await member.say(PING)
    (card,) = desk.slack.called("chat.postMessage")
    assert_no_ping(card.text)  # the notification's own text, shown in the banner
    assert_no_ping(json.dumps(card.blocks))
    await member.say(f"{PING} again")  # relayed to the thread
    assert_no_ping(desk.slack.called("chat.postMessage")[-1].text)

    assert await desk.channel.morning_summary(since=clock.now.replace(hour=0))
    assert_no_ping(desk.slack.called("chat.postMessage")[-1].text)
    await desk.command(STAFF, "queue")
    assert_no_ping(desk.slack.called("respond")[-1].text)
    async with desk.app.sessionmaker() as session, session.begin():
        await session.execute(update(Member).where(Member.registry_id == WEI[0]).values(last_name=PING[:100]))
    await desk.command(STAFF, f"lookup {WEI[0]}")
    assert_no_ping(desk.slack.called("respond")[-1].text)


def _longest_escalation(status: str, claimed_by: str | None) -> Any:
    from datetime import datetime

    from bot.helpdesk import EscalationCard

    words = ("<&>" * 1400)[:4000]  # escaping makes a member's text up to 5 times longer
    return EscalationCard(
        id=2**31 - 1,
        member=f"{'&' * 100} {'<' * 100} ({'9' * 32})",
        language="zh_Hans",
        registry="ca",
        question=words,
        after_hours=True,
        status=status,
        claimed_by=claimed_by,
        created_at=datetime(2026, 11, 23),
        transcript=tuple(("member", words) for _ in range(8)),
    )


def _longest_request(kind: str, status: str) -> Any:
    from datetime import datetime

    from bot.helpdesk import RequestCard

    return RequestCard(
        id=2**31 - 1,
        kind=kind,
        reference="AUD-" + "9" * 28,
        member=f"{'&' * 100} {'>' * 100} ({'9' * 32})",
        status=status,
        text=("&<" * 2000)[:4000],
        due_at=datetime(2026, 12, 21),
        documents=tuple(f"{n}_" + "<&>" * 83 + ".pdf" for n in range(10)),  # 10 names of 255 characters
        audit_reference="AUD-" + "9" * 28,
    )


def _assert_valid(blocks: list[dict[str, Any]]) -> None:
    """As the brief of Block Kit asks: slack_sdk's models accept every block, and there are at most 50."""
    from slack_sdk.models.blocks import Block

    from tests.fakes.slack_api import block_kit_errors

    assert len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
    assert block_kit_errors(blocks) == []  # and the elements of actions blocks (buttons) too


@pytest.mark.parametrize(
    ("status", "claimed_by"), [("open", None), ("claimed", "U" + "X" * 20), ("resolved", "USTAFF")]
)
def test_hand_off_cards_with_the_longest_inputs_pass_block_kit_validation(
    status: str, claimed_by: str | None
) -> None:
    from bot.channels.slack import escalation_blocks

    _assert_valid(escalation_blocks(_longest_escalation(status, claimed_by)))


@pytest.mark.parametrize("kind", ["audit", "appeal"])
@pytest.mark.parametrize("status", ["submitted", "under_review", "denied"])
def test_request_cards_and_the_deny_modal_with_the_longest_inputs_pass_block_kit_validation(
    kind: str, status: str
) -> None:
    from slack_sdk.models.views import View

    from bot.channels.slack import deny_modal, request_blocks

    card = _longest_request(kind, status)
    blocks = request_blocks(card)
    _assert_valid(blocks)
    text = json.dumps(blocks, ensure_ascii=False)
    assert all(f"• {n}_&lt;&amp;&gt;" in text for n in range(10))  # every document is named, escaped
    modal = deny_modal(f"{kind}:{card.id}|C{'0' * 31}|1700000000.000100", card.reference)
    View(**modal).validate_json()
    _assert_valid(modal["blocks"])


async def _add_request_with_longest_inputs(desk: Desk, kind: str) -> int:
    """An audit request (or an appeal of the demo's audit) with the longest texts the project stores."""
    from datetime import timedelta

    from sqlalchemy import update

    from bot.registry.models import Document, Member

    now = desk.app.helpdesk.clock()
    async with desk.app.sessionmaker() as session, session.begin():
        member = (await session.execute(select(Member).where(Member.registry_id == WEI[0]))).scalar_one()
        await session.execute(
            update(Member).where(Member.id == member.id).values(first_name="&" * 100, last_name="<" * 100)
        )
        audit = (
            await session.execute(select(AuditRequest).where(AuditRequest.reference == "AUD-DEMO-0002"))
        ).scalar_one()
        row: AuditRequest | Appeal
        if kind == "audit":
            row = AuditRequest(
                reference="AUD-LONGEST-0001",
                member_id=member.id,
                category="training",
                description=("<&>" * 1400)[:4000],
                submitted_at=now,
                due_at=now + timedelta(days=28),
            )
        else:
            row = Appeal(
                reference="APL-LONGEST-0001",
                audit_request_id=audit.id,
                member_id=member.id,
                reason=("<&>" * 1400)[:4000],
                submitted_at=now,
                due_at=now + timedelta(days=28),
            )
        session.add(row)
        await session.flush()
        for n in range(10):
            session.add(
                Document(
                    audit_request_id=row.id if kind == "audit" else None,
                    appeal_id=row.id if kind == "appeal" else None,
                    filename=f"{n}_" + "<&>" * 83 + ".pdf",
                    content_type="application/pdf",
                    size=5,
                    sha256=f"{n:064d}",
                    content=b"%PDF-",
                    uploaded_at=now,
                )
            )
        return row.id


@pytest.mark.parametrize("kind", ["audit", "appeal"])
async def test_a_request_with_the_longest_inputs_reaches_slack_and_can_be_denied(
    desk: Desk, kind: str
) -> None:
    row_id = await _add_request_with_longest_inputs(desk, kind)
    await desk.channel.post_request(kind, row_id)  # the fake refuses blocks Slack would refuse
    (card,) = [c for c in desk.slack.called("chat.postMessage") if c.blocks]
    _assert_valid(card.blocks)
    assert json.dumps(card.blocks).count("&lt;&amp;&gt;.pdf") == 10  # each document, escaped and named
    model = AuditRequest if kind == "audit" else Appeal
    async with desk.app.sessionmaker() as session:
        stored = await session.get(model, row_id)
    assert stored is not None and stored.slack_ts and stored.slack_channel

    decider = OPS if kind == "audit" else DIRECTOR
    await desk.click(decider, "deny", f"{kind}:{row_id}", ts=stored.slack_ts, channel=stored.slack_channel)
    (opened,) = desk.slack.called("views.open")
    view = (
        json.loads(opened.params["view"]) if isinstance(opened.params["view"], str) else opened.params["view"]
    )
    from slack_sdk.models.views import View

    View(**view).validate_json()
    assert (await desk.submit_denial(decider, view["private_metadata"], "x" * 2000)).status_code == 200
    _assert_valid(desk.slack.called("chat.update")[-1].blocks)  # the decided card, redrawn
    async with desk.app.sessionmaker() as session:
        decided = await session.get(model, row_id)
    assert decided is not None and decided.status == "denied"


async def test_staff_input_that_does_not_parse_gets_a_polite_answer_and_changes_nothing(desk: Desk) -> None:
    member = Chatter(desk.app.engine, "m")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    thread = str((await escalation(desk.app)).slack_ts)
    for text, hint in [
        ("stats 99999999999", "whole number"),
        ("stats -3", "whole number"),
        ("stats 0", "whole number"),
        ("stats 7 days", "whole number"),
        ("stats ３", "whole number"),  # a full-width digit
        ("lookup " + "9" * 40, "Registry ID"),
        ("lookup <!here>", "Registry ID"),
        ("lookup", "Registry ID"),
        ("frobnicate", "Usage"),
    ]:
        assert (await desk.command(STAFF, text)).status_code == 200, text
        answer = desk.slack.called("respond")[-1]
        assert answer.params["response_type"] == "ephemeral" and hint in answer.text, (text, answer.text)

    audit = (await _audits(desk))["AUD-DEMO-0002"]
    clicks = [
        (STAFF, "claim", "notanint"),
        (STAFF, "claim", "99999999999999"),
        (STAFF, "resolve", "-1"),
        (STAFF, "resolve", ""),
        (OPS, "approve", "audit:notanint"),
        (OPS, "approve", "audit:"),
        (OPS, "approve", f"bogus:{audit.id}"),
        (OPS, "approve", "audit:99999999999"),
        (OPS, "deny", "audit:1.5"),
    ]
    for user, action, value in clicks:
        response = await desk.click(user, action, value, ts=thread)
        assert response.status_code == 200, (action, value)
        notice = desk.slack.called("chat.postEphemeral")[-1]
        assert notice.params["user"] == user and "nothing changed" in notice.text, (action, value)

    for metadata, reason in [
        ("audit:abc|CAUDIT|1700.1", "A real reason."),
        ("garbage", "A real reason."),
        (f"audit:{audit.id}|<!channel>|1700.1", "A real reason."),
        (f"audit:{audit.id}|CAUDIT|1700.1", None),  # a view without its state
        (f"audit:{audit.id}|CAUDIT|1700.1", "x" * 2001),
    ]:
        response = await desk.submit_denial(OPS, metadata, reason)
        assert response.status_code == 200 and response.json()["response_action"] == "errors", metadata

    assert desk.slack.called("views.open") == []
    found = await escalation(desk.app)
    assert (found.status, found.claimed_by) == ("open", None)
    assert (await _audits(desk))["AUD-DEMO-0002"].status == "submitted"
    assert desk.chats.pushed == []


async def _audits(desk: Desk) -> dict[str, AuditRequest]:
    async with desk.app.sessionmaker() as session:
        return {a.reference: a for a in (await session.execute(select(AuditRequest))).scalars()}


async def handed_off(desk: Desk, user_id: str) -> str:
    """A member asks for a person; the thread of the hand-off's card in Slack."""
    member = Chatter(desk.app.engine, user_id)
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    return str((await escalation(desk.app)).slack_ts)


async def test_a_thread_reply_from_someone_not_on_the_staff_list_is_explained_to_them(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    thread = await handed_off(desk, "waiting")
    reply = desk.event(
        {
            "type": "message",
            "channel": "CHANDOFF",
            "user": STRANGER,
            "text": "I can help: my secret reply",
            "ts": "1.9",
            "thread_ts": thread,
        },
        event_id="EvStranger",
    )
    with caplog.at_level("INFO"):
        assert (await desk.post(reply, "application/json")).status_code == 200
        assert (await desk.post(reply, "application/json")).status_code == 200  # Slack's retry
    (notice,) = desk.slack.called("chat.postEphemeral")
    assert (notice.params["channel"], notice.params["user"], notice.params["thread_ts"]) == (
        "CHANDOFF",
        STRANGER,
        thread,
    )
    assert "did not reach the member" in notice.text and "staff list" in notice.text
    assert desk.chats.pushed == []  # the member still does not get it
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.channels.slack"]
    assert any("not on the staff list" in line for line in logged)
    assert not any("secret reply" in line or STRANGER in line for line in logged)  # no personal data


async def test_an_event_is_acknowledged_only_once_its_effect_is_stored(desk: Desk, tmp_path: Any) -> None:
    from sqlalchemy import func
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from bot.registry.models import ProcessedUpdate
    from bot.registry.session import make_engine

    thread = await handed_off(desk, "stored")
    reply = desk.event(
        {
            "type": "message",
            "channel": "CHANDOFF",
            "user": STAFF,
            "text": "Your certificate is on its way.",
            "ts": "3.1",
            "thread_ts": thread,
        },
        event_id="EvStored",
    )
    url = str(desk.app.database.url)
    unreachable = (
        f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'registry.db'}"
        if url.startswith("sqlite")
        else "postgresql+asyncpg://postgres@127.0.0.1:9/test"  # nothing listens on the discard port
    )
    broken = make_engine(unreachable)
    working = desk.app.helpdesk.sessionmaker

    def database_goes_away(method: str) -> None:
        if method == "users.info":  # after the thread is found, before the reply is stored
            desk.app.helpdesk.sessionmaker = async_sessionmaker(broken)

    async def processed() -> int:
        async with working() as session:
            query = (
                select(func.count()).select_from(ProcessedUpdate).where(ProcessedUpdate.channel == "slack")
            )
            return int((await session.execute(query)).scalar_one())

    try:
        desk.app.helpdesk.sessionmaker = async_sessionmaker(broken)  # away from the start
        assert not (await desk.post(reply, "application/json")).is_success
        desk.app.helpdesk.sessionmaker = working
        desk.slack.on_call = database_goes_away  # away half-way through
        assert not (await desk.post(reply, "application/json")).is_success
        desk.slack.on_call = None
        assert await processed() == 0 and desk.chats.pushed == []

        desk.app.helpdesk.sessionmaker = working  # back: Slack delivers the event again
        assert (await desk.post(reply, "application/json")).status_code == 200
        assert (await desk.post(reply, "application/json")).status_code == 200  # and once more
    finally:
        desk.app.helpdesk.sessionmaker = working
        await broken.dispose()
    assert desk.chats.texts("stored") == ["Help desk (Ana): Your certificate is on its way."]
    assert await processed() == 1


async def test_staff_in_slack_answer_members_on_sms_and_whatsapp(desk: Desk, clock: Any) -> None:
    """A member texting and one on WhatsApp ask for a person; a reply in each card's thread reaches them."""
    from starlette.applications import Starlette

    from bot.channels.sms import SmsChannel
    from bot.channels.whatsapp import WhatsAppChannel
    from tests.fakes.twilio_api import FakeTwilioAPI
    from tests.fakes.whatsapp_api import FakeGraphAPI
    from tests.helpers import rows
    from tests.test_sms import BASE
    from tests.test_sms import Phone as Texter
    from tests.test_sms import settings_for as sms_settings
    from tests.test_whatsapp import phone as whatsapp_phone
    from tests.test_whatsapp import settings_for as whatsapp_settings

    async with FakeTwilioAPI() as twilio, FakeGraphAPI() as graph:
        sms = SmsChannel(desk.app.engine, sms_settings(desk.app, twilio))
        whatsapp = WhatsAppChannel(desk.app.engine, whatsapp_settings(desk.app, graph))
        desk.app.engine.listeners.clear()
        connect(desk.app, [sms, whatsapp, desk.channel])  # the wiring `serve` does
        await sms.start()
        await whatsapp.start()
        routes = [*sms.routes(), *whatsapp.routes()]
        transport = httpx.ASGITransport(app=Starlette(routes=routes))
        try:
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                texter = Texter(http, twilio, desk.app, "+15551237001")
                await texter.text("quiero hablar con una persona")
                await texter.text("No encuentro mi certificado")
                chatter = whatsapp_phone(http, graph, clock, "15551237002")
                await chatter.say("我想找真人客服")
                await chatter.say("我的证书不见了")
            assert await desk.app.engine.settle(timeout=10)  # both cards are in Slack
            first, second = sorted(await rows(desk.app, Escalation), key=lambda row: row.id)
            for found, words in ((first, "Hola, lo reviso."), (second, "您好，我来查一下。")):
                thread = {"type": "message", "channel": "CHANDOFF", "user": STAFF, "text": words}
                body = desk.event({**thread, "ts": f"2.{found.id}", "thread_ts": str(found.slack_ts)})
                assert (await desk.post(body, "application/json")).status_code == 200
            assert any("Hola, lo reviso." in text for text in twilio.to("+15551237001"))
            assert any("您好，我来查一下。" in sent.text for sent in graph.to("15551237002"))
        finally:
            await whatsapp.stop()
            await sms.stop()
