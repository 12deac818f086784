"""Answer feedback: after an article answer the member says whether it helped, by button or in words, in
each language; a 👎 is a content gap and offers the next likely topics and a person."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.sms import sms_text
from bot.messages import Choice, Reply
from bot.registry.models import Escalation, Feedback, UnansweredQuestion
from tests.helpers import Chatter


async def _feedback(app: App) -> list[Feedback]:
    async with app.sessionmaker() as session:
        return list((await session.execute(select(Feedback).order_by(Feedback.id))).scalars())


async def _gaps(app: App) -> list[UnansweredQuestion]:
    async with app.sessionmaker() as session:
        query = select(UnansweredQuestion).order_by(UnansweredQuestion.id)
        return list((await session.execute(query)).scalars())


# An article answer with no errand to offer: a typed yes or no says whether it helped.
PASSWORD = {"en": "how do I reset my password", "es": "cómo cambio mi contraseña", "zh_Hans": "怎么重设密码"}


@pytest.mark.parametrize(
    ("lang", "typed", "helpful"),
    [
        ("en", "yes please", True),
        ("en", "yes it did, thanks", True),
        ("en", "yes, but how do I change my e-mail too?", None),  # says more: a question of its own
        ("en", "it helped", True),
        ("en", "nope", False),
        ("es", "sí, claro", True),
        ("es", "me sirvió", True),
        ("es", "mejor no", False),
        ("es", "no me sirvió", False),
        ("zh_Hans", "好的", True),
        ("zh_Hans", "有幫助", True),  # Traditional characters
        ("zh_Hans", "没有帮助", False),
        ("zh_Hans", "不是", False),
    ],
)
async def test_a_typed_yes_or_no_says_whether_the_answer_helped(
    app: App, lang: str, typed: str, helpful: bool | None
) -> None:
    member = Chatter(app.engine, f"fb-{lang}-{typed}")
    answer = await member.say(PASSWORD[lang])
    assert any("helped:" in choice.payload for reply in member.last for choice in reply.choices)
    assert {"Did this answer your question?": "en", "¿Le sirvió esta respuesta?": "es"}.get(
        answer.splitlines()[-1], "zh_Hans" if "这个回答对您有帮助吗" in answer else None
    ) == lang
    said = await member.say(typed)
    rows = await _feedback(app)
    assert len(rows) == 1 and rows[0].topic == "forgot-password" and rows[0].language == lang
    assert rows[0].helpful is helpful
    gaps = [gap for gap in await _gaps(app) if gap.kind == "unhelpful"]
    if helpful is False:
        # sorry, the next likely topics, and a person
        assert len(member.buttons()) >= 2 and member.last[-1].choices[-1].payload == "flow:handoff"
        assert "forgot-password" not in {c.payload.removeprefix("topic:") for c in member.last[-1].choices}
        assert len(gaps) == 1 and gaps[0].topic == "forgot-password" and gaps[0].text == PASSWORD[lang]
    else:
        assert not gaps
    if helpful is True:
        assert said in (
            "Thank you for telling me. Is there anything else I can help you with?",
            "Gracias por decírmelo. ¿Hay algo más en lo que pueda ayudarle?",
            "谢谢您告诉我。还有什么需要我帮忙的吗？",
        )


async def test_with_an_errand_offered_a_yes_starts_it_and_the_thumbs_still_work(app: App) -> None:
    member = Chatter(app.engine, "fb-offer")
    await member.say("how do I withdraw from a training")
    assert member.buttons()[0] == "Yes, start now"
    assert member.buttons()[-2:] == ["👍 Helpful", "👎 Not helpful"]
    started = await member.say("yes please")
    assert "Registry ID" in started  # the errand, not a thank-you
    assert (await _feedback(app))[0].helpful is None

    other = Chatter(app.engine, "fb-offer-2")
    await other.say("¿cómo me retiro de una capacitación?")
    assert other.buttons()[-2:] == ["👍 Me sirvió", "👎 No me sirvió"]
    await other.say("👎 No me sirvió")  # the label typed out presses it
    assert (await _feedback(app))[1].helpful is False
    assert "Lamento que no le haya servido" in other.last[0].text


async def test_after_a_thumbs_down_the_person_starts_from_the_question(app: App) -> None:
    member = Chatter(app.engine, "fb-person")
    question = "how can I see my training hours? my Registry ID is 12345678"
    await member.say(question)
    assert member.buttons()[-1] == "👎 Not helpful"
    await member.press("Not helpful")
    await member.press("Talk to a person")
    async with app.sessionmaker() as session:
        escalation = (await session.execute(select(Escalation))).scalar_one()
    assert escalation.question == question
    gap = next(g for g in await _gaps(app) if g.kind == "unhelpful")
    assert "12345678" not in gap.text and "[number]" in gap.text  # the ID is masked where staff read it


async def test_a_thumb_counts_once_and_only_in_its_own_conversation(app: App) -> None:
    member, stranger = Chatter(app.engine, "fb-once"), Chatter(app.engine, "fb-stranger")
    await member.say("what is the training calendar")
    payload = next(c.payload for c in member.last[0].choices if c.payload.endswith(":yes"))
    forged = payload.replace(":yes", ":no")
    assert "already noted" in await stranger.say(payload=forged)  # another chat's answer: nothing written
    assert (await _feedback(app))[0].helpful is None
    await member.say(payload=payload)
    assert "already noted" in await member.say(payload=forged)
    assert (await _feedback(app))[0].helpful is True
    assert "already noted" in await member.say(payload="helped:999999:no")


async def test_helpfulness_is_counted_per_article_and_language(app: App) -> None:
    from datetime import timedelta

    from bot.registry import learning

    for number, (question, verdict) in enumerate(
        [
            ("what is the training calendar", "yes"),
            ("what is the training calendar", "no"),
            ("¿qué es el calendario de capacitaciones?", "sí"),
            ("what is the training calendar", None),
        ]
    ):
        member = Chatter(app.engine, f"fb-count-{number}")
        await member.say(question)
        if verdict:
            await member.say(verdict)
    async with app.sessionmaker() as session:
        figures = await learning.helpfulness(
            session, registry="ca", since=app.engine.clock() - timedelta(days=7)
        )
    counted = {(f.topic, f.language): (f.answers, f.helpful, f.unhelpful) for f in figures}
    assert counted == {("training-calendar", "en"): (3, 1, 1), ("training-calendar", "es"): (1, 1, 0)}


def test_a_text_message_shows_the_thumbs_as_words_so_it_stays_in_gsm() -> None:
    reply = Reply(
        "Did this answer your question?",
        (Choice("👍 Helpful", "helped:1:yes", "yes"), Choice("👎 Not helpful", "helped:1:no", "no")),
    )
    assert sms_text(reply) == "Did this answer your question?\n1. Helpful\n2. Not helpful"
