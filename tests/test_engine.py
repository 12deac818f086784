"""The engine: duplicates, persistence across instances, serialized turns, routing and transcripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from bot.app import App
from bot.registry.models import Conversation, Escalation, ProcessedUpdate, TranscriptEntry, UnansweredQuestion
from tests.conftest import Clock
from tests.helpers import Chatter, count_rows


async def test_answers_a_question_with_the_article_and_its_source(app: App) -> None:
    member = Chatter(app.engine)
    text = await member.say("How do I withdraw from a training?")
    assert "Withdraw" in text and "My Training Events" in text
    assert member.last[0].links and member.last[0].links[0].url.startswith("https://")
    assert await count_rows(app, TranscriptEntry) == 2


async def test_a_duplicate_delivery_changes_nothing_and_gets_its_first_replies_again(app: App) -> None:
    member = Chatter(app.engine)
    await member.say("/language")
    first = await member.press("Español")  # buttons too: the replay is the reply as first given
    given = member.last
    again = await member.say(payload="lang:es", delivery_id="never-the-same")  # a new press: handled
    assert "español" in first and "español" in again
    repeat = await app.engine.turn(member.inbound(payload="lang:es", delivery_id="same-id"))
    replay = await app.engine.turn(member.inbound("I forgot my password", delivery_id="same-id"))
    assert replay.duplicate and not repeat.duplicate
    assert replay.replies == repeat.replies and replay.lang == "es"  # the platform never said it arrived
    assert given[0].text == repeat.replies[0].text
    assert await count_rows(app, TranscriptEntry) == 8  # four turns before the replay, none for it
    assert await count_rows(app, ProcessedUpdate) == 4


async def test_language_and_flow_step_survive_a_new_engine(make_app: Callable[..., App], app: App) -> None:
    member = Chatter(app.engine)
    await member.say("/language")
    await member.press("Español")
    assert "español" in member.last[0].text
    await member.say("quiero hablar con una persona")  # starts the hand-off: asks for the question
    await app.close()

    restarted = make_app()
    try:
        again = Chatter(restarted.engine, member.user_id)
        text = await again.say("No puedo entrar a mi cuenta desde ayer")
        assert "Gracias" in text  # the hand-off continued at its step, in Spanish
        assert await count_rows(restarted, Escalation, language="es") == 1
    finally:
        await restarted.close()


async def test_turns_of_one_conversation_run_one_at_a_time(app: App) -> None:
    members = [Chatter(app.engine, "same-user") for _ in range(8)]
    questions = ["I forgot my password", "How do I enroll in a workshop?"] * 4
    await asyncio.gather(*(m.say(q) for m, q in zip(members, questions, strict=True)))
    async with app.sessionmaker() as session:
        rows = (await session.execute(select(TranscriptEntry).order_by(TranscriptEntry.id))).scalars().all()
    directions = [row.direction for row in rows]
    assert directions == ["in", "out"] * 8  # never two turns interleaved
    assert await count_rows(app, Conversation) == 1


async def test_unknown_question_offers_a_person_and_is_recorded(app: App) -> None:
    member = Chatter(app.engine)
    text = await member.say("What's the weather in Sacramento today?")
    assert "don't have an answer" in text
    assert "Talk to a person" in member.buttons()
    assert await count_rows(app, UnansweredQuestion) == 1


async def test_close_call_asks_which_topic_was_meant(app: App) -> None:
    member = Chatter(app.engine)
    await member.say("training")
    assert "Which of these" in member.last[0].text
    assert len(member.buttons()) >= 3  # the candidates and a person
    text = await member.press("Training Calendar")
    assert "Training Calendar" in text


async def test_flow_offer_button_and_cancel(app: App) -> None:
    member = Chatter(app.engine)
    await member.say("I want to talk to a real person")
    assert "What would you like help with" in member.last[0].text
    text = await member.say("cancel")
    assert "stopped" in text
    assert await count_rows(app, Escalation) == 0
    text = await member.say("cancel")
    assert "nothing in progress" in text


async def test_question_mid_flow_is_answered_and_the_flow_resumes(app: App) -> None:
    member = Chatter(app.engine)
    await member.say("/language")
    text = await member.say("what is the training calendar")
    assert "Training Calendar" in text and "Which language" in member.last[-1].text
    text = await member.say("english")
    assert "English" in text


async def test_stale_button_does_nothing(app: App) -> None:
    member = Chatter(app.engine)
    await member.say("/language")
    await member.press("English")
    text = await member.say(payload="s:language:language:es")  # the same button, pressed again later
    assert "earlier message" in text
    async with app.sessionmaker() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert conversation.language == "en"


async def test_flow_left_for_a_day_starts_over(app: App, clock: Clock) -> None:
    member = Chatter(app.engine)
    await member.say("I want to talk to a person")
    clock.now += timedelta(hours=25)
    text = await member.say("hello")
    assert "been a while" in text
    assert await count_rows(app, Escalation) == 0


async def test_empty_message_gets_a_polite_reply(app: App) -> None:
    member = Chatter(app.engine)
    assert "type your question" in await member.say("   ")


async def test_notice_is_shown_once_at_the_start(make_app: Callable[..., App], app: App) -> None:
    app.profile.__dict__["notice"] = {"en": "The site is down for maintenance on Sunday."}
    try:
        member = Chatter(app.engine)
        assert "maintenance on Sunday" in await member.say("hi")
        assert "maintenance" not in await member.say("thanks")
        assert "maintenance on Sunday" in await member.say("any announcements?")
    finally:
        app.profile.__dict__["notice"] = ""


async def test_asking_for_help_is_never_taken_for_thanks(app: App) -> None:
    member = Chatter(app.engine, "ayuda")
    text = await member.say("hola, necesito ayuda")
    assert "De nada" not in text and "Puedo responder" in text
    assert len(member.buttons()) >= 5  # the menu of what the assistant does
    assert "De nada" in await member.say("muchas gracias")
