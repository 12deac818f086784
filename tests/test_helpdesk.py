"""Staff actions, whatever the tool: a live hand-off, ratings, audit and appeal decisions, staff commands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.app import App
from bot.messages import Reply
from bot.registry.models import Appeal, AuditRequest, Escalation, Feedback, OutboxMessage
from tests.helpers import Chatter, one, verify

STAFF = {
    "slack_bot_token": "xoxb-test",
    "slack_signing_secret": "signing-secret",
    "slack_staff_ids": ["USTAFF"],
    "slack_operations_ids": ["UOPS"],
    "slack_director_ids": ["UDIR"],
}
WEI = ("10000002", "wei.chen@example.org")


class Chats:
    """Stands in for the member channels: what each chat account was pushed."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str, Reply]] = []
        self.away: set[str] = set()  # chats that cannot take a message now (a closed window, STOP)

    async def __call__(self, channel: str, user_id: str, replies: list[Reply]) -> bool:
        if user_id in self.away:
            return False
        self.pushed.extend((channel, user_id, reply) for reply in replies)
        return True

    def texts(self, user_id: str) -> list[str]:
        return [reply.text for _, user, reply in self.pushed if user == user_id]


@pytest.fixture
async def staffed(make_app: Callable[..., App]) -> AsyncIterator[tuple[App, Chats, list[tuple[str, int]]]]:
    """The assistant with Slack configured (so hand-offs are live), member chats and staff events recorded."""
    application = make_app(**STAFF)
    await application.migrate()
    await application.seed_demo()
    chats, events = Chats(), []

    async def listener(event: str, row_id: int) -> None:
        events.append((event, row_id))

    application.helpdesk.push = chats
    application.engine.listeners.append(listener)
    try:
        yield application, chats, events
    finally:
        await application.close()


async def test_a_live_hand_off_from_question_to_rating(
    staffed: tuple[App, Chats, list[tuple[str, int]]],
) -> None:
    app, chats, events = staffed
    member = Chatter(app.engine, "ana")
    await member.say("quiero hablar con una persona")
    await member.say("Mis documentos fueron rechazados dos veces")
    ((kind, escalation_id),) = events
    assert kind == "escalation"

    # while a person has it, the member's words go to staff and the assistant says nothing
    assert await member.say("¿cómo sé qué documento falta?") == ""
    assert events[-1][0] == "member_message"
    relayed = await app.helpdesk.member_message(events[-1][1])
    assert relayed is not None and relayed[1] == "¿cómo sé qué documento falta?"

    assert (await app.helpdesk.claim(escalation_id, "USTAFF")).ok
    second = await app.helpdesk.claim(escalation_id, "UOTHER")
    assert not second.ok and "USTAFF" in second.message
    assert (await app.helpdesk.reply(escalation_id, "Ana", "Falta su diploma; súbalo en My Documents.")).ok
    assert chats.texts("ana") == ["Mesa de ayuda (Ana): Falta su diploma; súbalo en My Documents."]

    assert (await app.helpdesk.resolve(escalation_id, "USTAFF")).ok
    assert not (await app.helpdesk.resolve(escalation_id, "USTAFF")).ok  # a second click changes nothing
    closing = chats.pushed[-1][2]
    assert "cerró esta conversación" in closing.text and len(closing.choices) == 5
    member.last = [closing]
    assert "Gracias por su valoración" in await member.press("★★★★")
    escalation = await one(app, Escalation, Escalation.id == escalation_id)
    assert (escalation.status, escalation.rating) == ("resolved", 4)
    feedback = await one(app, Feedback, Feedback.rating.is_not(None))
    assert feedback.rating == 4
    # the conversation is the assistant's again
    assert "Forgot Password" in await member.say("olvidé mi contraseña")


async def test_without_slack_the_assistant_keeps_answering(app: App) -> None:
    member = Chatter(app.engine, "solo")
    await member.say("talk to a person")
    await member.say("My documents were rejected")
    assert "Forgot Password" in await member.say("I forgot my password")


async def test_an_audit_denied_then_appealed_then_approved(
    staffed: tuple[App, Chats, list[tuple[str, int]]],
) -> None:
    app, chats, _events = staffed
    member = Chatter(app.engine, "wei")
    await member.say("中文")
    await verify(member, app.sessionmaker, *WEI)
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-DEMO-0002")
    assert audit.status == "submitted"

    refused = await app.helpdesk.decide("audit", audit.id, user="USTAFF", approve=False, note="x")
    assert not refused.ok and "Operations Team" in refused.message
    denied = await app.helpdesk.decide(
        "audit", audit.id, user="UOPS", approve=False, note="The transcript shows 9 units, not 12."
    )
    assert denied.ok
    again = await app.helpdesk.decide("audit", audit.id, user="UOPS", approve=True)
    assert not again.ok and "already denied" in again.message
    told = chats.texts("wei")[-1]
    assert "未获批准" in told and "9 units" in told and "申诉" in told
    mail = await one(app, OutboxMessage, OutboxMessage.subject.contains("AUD-DEMO-0002"))
    assert "未获批准" in mail.body

    await member.say("我要申诉")  # asked outright: the appeal starts at once
    await member.press("AUD-DEMO-0002")
    await member.say("我的成绩单上清楚写着12个学分，请再看一下。")
    await member.press("完成")
    await member.press("是")
    appeal = await one(app, Appeal, Appeal.audit_request_id == audit.id)
    assert appeal.status == "submitted"

    assert not (await app.helpdesk.decide("appeal", appeal.id, user="UOPS", approve=True)).ok
    assert (await app.helpdesk.decide("appeal", appeal.id, user="UDIR", approve=True, note="Confirmed.")).ok
    async with app.sessionmaker() as session:
        appeal_now = await session.get(Appeal, appeal.id)
        audit_now = await session.get(AuditRequest, audit.id)
    assert appeal_now is not None and (appeal_now.status, appeal_now.decided_by) == ("approved", "UDIR")
    assert audit_now is not None and audit_now.status == "approved"
    assert "批准了您的申诉" in chats.texts("wei")[-1]
    # her status list says so in her language, naming the appeal, with no English note from the system
    status = await member.say("我的审核进度怎么样了？")
    line = next(line for line in status.splitlines() if "AUD-DEMO-0002" in line)
    assert appeal_now.reference in line and "approved" not in line and "9 units" not in line


async def test_a_decision_the_chat_cannot_take_goes_by_e_mail_and_staff_are_told(
    staffed: tuple[App, Chats, list[tuple[str, int]]],
) -> None:
    app, chats, _events = staffed
    member = Chatter(app.engine, "wei")
    await verify(member, app.sessionmaker, *WEI)
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-DEMO-0002")
    chats.away.add("wei")  # her chat cannot take a message now (a closed WhatsApp window, STOP)
    denied = await app.helpdesk.decide("audit", audit.id, user="UOPS", approve=False, note="9 units, not 12.")
    assert denied.ok and "by e-mail" in denied.message
    assert chats.texts("wei") == []
    mail = await one(app, OutboxMessage, OutboxMessage.subject.contains("AUD-DEMO-0002"))
    assert "9 units, not 12." in mail.body


async def test_staff_commands(staffed: tuple[App, Chats, list[tuple[str, int]]]) -> None:
    app, _chats, _events = staffed
    member = Chatter(app.engine, "q")
    await member.say("talk to a person")
    await member.say("Where is my certificate?")
    await Chatter(app.engine, "lost").say("what is the airspeed of a swallow")
    (card,) = await app.helpdesk.queue()
    assert card.question == "Where is my certificate?" and card.member == "not verified"
    record = await app.helpdesk.lookup("10000002")
    assert record is not None and "AUD-DEMO-0002" in [reference for reference, _, _ in record.requests]
    assert await app.helpdesk.lookup("99999999") is None
    stats = await app.helpdesk.stats(7)
    assert (stats.conversations, stats.handoffs, stats.answered_alone) == (2, 1, 1)
    assert stats.top_unanswered == (("what is the airspeed of a swallow", 1),)
