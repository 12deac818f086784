"""What members type in a conversation: a yes or no to an offer, a button's number or words, a person
asked for with the reason, hours questions, a status in Spanish, an errand asked for outright; in three
languages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.app import App
from bot.registry.models import ChatLink, Escalation
from tests.conftest import Clock
from tests.helpers import Chatter, emailed_code, rows, verify
from tests.test_flows import enrollment_status
from tests.test_handoff import pacific

MARIA = ("10000001", "maria.lopez@example.org")
WEI = ("10000002", "wei.chen@example.org")
HOW_TO_WITHDRAW = {
    "en": "how do I withdraw from a training?",
    "es": "¿cómo me retiro de una capacitación?",
    "zh_Hans": "怎么退出培训？",
}
ASKS_FOR_THE_ID = {"en": "Registry ID", "es": "Registry ID", "zh_Hans": "登记号码"}


@pytest.mark.parametrize(
    ("lang", "typed"),
    [
        ("en", "yes"),
        ("en", "yes please"),
        ("en", "Sure, go ahead"),
        ("en", "1"),
        ("en", "Yes, start now"),
        ("es", "sí"),
        ("es", "si claro"),
        ("es", "sí, por favor"),
        ("es", "Sí, empezar ahora"),
        ("zh_Hans", "好的"),
        ("zh_Hans", "好啊，麻烦你"),
        ("zh_Hans", "係呀"),  # Cantonese, Traditional characters
        ("zh_Hans", "可以"),
    ],
)
async def test_a_typed_yes_takes_up_the_offer_after_an_article(app: App, lang: str, typed: str) -> None:
    member = Chatter(app.engine, f"yes-{lang}-{typed}", hint=lang)
    await member.say(HOW_TO_WITHDRAW[lang])
    assert len(member.buttons()) >= 2  # "yes, start now" and the related topics
    text = await member.say(typed)
    assert ASKS_FOR_THE_ID[lang] in text  # the errand starts: verification first


@pytest.mark.parametrize(
    ("lang", "typed", "expected"),
    [
        ("en", "no thanks", "anything else"),
        ("en", "not now", "anything else"),
        ("es", "mejor no", "algo más"),
        ("es", "no gracias", "algo más"),
        ("zh_Hans", "不用了", "还有什么"),
        ("zh_Hans", "唔使喇", "还有什么"),
    ],
)
async def test_a_typed_no_declines_the_offer_politely(app: App, lang: str, typed: str, expected: str) -> None:
    member = Chatter(app.engine, f"no-{lang}-{typed}", hint=lang)
    await member.say(HOW_TO_WITHDRAW[lang])
    assert expected in await member.say(typed)


@pytest.mark.parametrize(
    ("lang", "confirm", "done"),
    [
        ("en", "yes please", "Withdrawn"),
        ("es", "sí, por favor", "Withdrawn"),
        ("es", "claro que si", "Withdrawn"),
        ("zh_Hans", "好的，请帮我退出", "Withdrawn"),
    ],
)
async def test_a_typed_yes_confirms_a_withdrawal(app: App, lang: str, confirm: str, done: str) -> None:
    member = Chatter(app.engine, f"confirm-{lang}-{confirm}", hint=lang)
    await verify(member, app.sessionmaker, *MARIA, start="/link")
    await member.say("/start")
    await member.press_flow("withdraw-training")
    await member.say("Supporting Dual Language Learners")  # a button's label, typed out
    assert done in await member.say(confirm)
    assert await enrollment_status(app, MARIA[0], "T-401") == "withdrawn"


@pytest.mark.parametrize("typed", ["mejor no, olvídalo", "no", "nel, ya no"])
async def test_a_typed_no_at_the_confirmation_changes_nothing(app: App, typed: str) -> None:
    member = Chatter(app.engine, f"keep-{typed}", hint="es")
    await verify(member, app.sessionmaker, *MARIA, start="/link")
    await member.press_flow("withdraw-training")
    await member.say("2")  # the second training listed, by its number
    text = await member.say(typed)
    assert "Withdrawn" not in text
    assert await enrollment_status(app, MARIA[0], "T-401") == "enrolled"
    assert await enrollment_status(app, MARIA[0], "T-402") == "enrolled"


@pytest.mark.parametrize(
    ("lang", "typed"),
    [("en", "2"), ("es", "2"), ("zh_Hans", "２"), ("en", "When you can't withdraw from a training")],
)
async def test_a_number_or_a_label_presses_the_button_it_names(app: App, lang: str, typed: str) -> None:
    member = Chatter(app.engine, f"press-{lang}-{typed}", hint=lang)
    await member.say(HOW_TO_WITHDRAW[lang])
    second = member.buttons()[1]  # the first related topic
    text = await member.say(typed)
    assert text.startswith(f"**{second}**")


@pytest.mark.parametrize(("lang", "greeting", "word"), [("es", "hola", "Hola"), ("zh_Hans", "你好", "您好")])
async def test_a_bare_number_or_code_never_changes_the_language(
    app: App, lang: str, greeting: str, word: str
) -> None:
    member = Chatter(app.engine, f"digits-{lang}")
    assert word in await member.say(greeting)
    for typed in ("7", "606994", "ok", "10000001"):
        text = await member.say(typed)
        assert "I'm sorry" not in text and "Which of these" not in text, typed


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("en", "I want to talk to a person about my audit request that was denied"),
        ("es", "quiero hablar con una persona sobre mi solicitud de auditoría que fue negada"),
        ("zh_Hans", "我想找真人谈谈我被拒绝的审核申请"),
    ],
)
async def test_a_person_asked_for_with_the_reason_opens_the_hand_off_at_once(
    app: App, lang: str, message: str
) -> None:
    member = Chatter(app.engine, f"person-{lang}", hint=lang)
    await member.say(message)
    (escalation,) = await rows(app, Escalation)
    assert escalation.question == message and escalation.language == lang  # not asked again


@pytest.mark.parametrize(
    ("lang", "message", "asks"),
    [
        ("en", "I want to talk to a person", "What would you like help with"),
        ("es", "quiero hablar con una persona", "¿Con qué"),
        ("zh_Hans", "我要找真人", "您需要什么帮助"),
    ],
)
async def test_a_person_asked_for_alone_is_asked_what_about(
    app: App, lang: str, message: str, asks: str
) -> None:
    member = Chatter(app.engine, f"person-alone-{lang}", hint=lang)
    text = await member.say(message)
    assert await rows(app, Escalation) == [] and asks in text


async def test_the_person_offered_after_a_question_takes_that_question(app: App) -> None:
    member = Chatter(app.engine, "person-after")
    question = "my paycheck from the center is late again, who do I talk to"
    await member.say(question)
    await member.press("Talk to a person")
    (escalation,) = await rows(app, Escalation)
    assert escalation.question == question


async def test_an_older_question_is_not_handed_on_later(app: App) -> None:
    member = Chatter(app.engine, "person-later")
    await member.say("my paycheck from the center is late again, who do I talk to")
    await member.say("how do I reset my password")
    text = await member.say("I want to talk to a person")
    assert await rows(app, Escalation) == [] and "What would you like help with" in text


async def test_the_spanish_menu_offers_a_person_once(app: App) -> None:
    member = Chatter(app.engine, "persona-una-vez", hint="es")
    await member.say("ayuda")
    labels = [label for label in member.buttons() if "persona" in label.lower()]
    assert labels == ["Hablar con una persona"]


@pytest.mark.parametrize(
    ("lang", "question", "weekly", "closed"),
    [
        ("en", "what are your hours", "Monday to Friday", "opens again"),
        ("en", "what time do you open tomorrow", "Monday to Friday", "opens again"),
        ("en", "are you open on christmas?", "Monday to Friday", "opens again"),
        ("en", "when do you close", "Monday to Friday", "opens again"),
        ("es", "a que hora cierran", "de lunes a viernes", "vuelve a abrir"),
        ("es", "¿están abiertos mañana?", "de lunes a viernes", "vuelve a abrir"),
        ("zh_Hans", "你们几点开门", "星期一至星期五", "恢复服务"),
        ("zh_Hans", "聖誕節有冇開門", "星期一至星期五", "恢复服务"),
    ],
)
async def test_hours_questions_get_the_weekly_hours_the_status_and_the_next_opening(
    app: App, clock: Clock, lang: str, question: str, weekly: str, closed: str
) -> None:
    clock.now = pacific(2026, 12, 24, 18, 0)  # Thursday evening, Christmas Eve
    member = Chatter(app.engine, f"hours-{lang}-{question}", hint=lang)
    text = await member.say(question)
    assert weekly in text and closed in text, text
    assert "8:00" in text and ("5:00" in text or "17:00" in text)
    assert ("25" in text) and ("Monday, December 28" in text or "28" in text)  # holiday, then Monday


@pytest.mark.parametrize(
    "message", ["¿cuál es el estado de mis solicitudes?", "mis trámites", "status", "estatus de mi apelación"]
)
async def test_a_spanish_status_question_reaches_the_status_errand(app: App, message: str) -> None:
    member = Chatter(app.engine, f"estado-{message}", hint="es")
    await member.say("hola")
    await verify(member, app.sessionmaker, *WEI, start="/link")
    text = await member.say(message)
    assert "AUD-DEMO-0002" in text


async def test_the_status_list_puts_each_request_on_its_own_line(app: App) -> None:
    member = Chatter(app.engine, "status-lines")
    await verify(member, app.sessionmaker, *WEI)
    text = await member.say("status of my audit")
    heading, first, *_ = text.splitlines()
    assert heading == "Your audit requests:" and first.startswith("- AUD-DEMO-0002")


@pytest.mark.parametrize(
    ("lang", "message", "asks"),
    [
        ("en", "forgot my registry number, can you send it?", "e-mail"),
        ("es", "¿me puede mandar mi número de registro? no lo encuentro", "correo"),
        ("zh_Hans", "帮我把registry号码发到我的邮箱", "邮箱"),
    ],
)
async def test_an_errand_asked_outright_starts_with_the_steps_one_tap_away(
    app: App, lang: str, message: str, asks: str
) -> None:
    member = Chatter(app.engine, f"errand-{lang}", hint=lang)
    text = await member.say(message)
    assert asks in text and "**" not in text  # the errand's question, not the article
    steps = member.last[-1].choices[-1]
    assert steps.payload == "steps:find-registry-id"
    text = await member.say(payload=steps.payload)
    assert text.startswith("**") and len(member.last) == 1  # the article instead: the errand stops
    assert (await member.say("how do I find my registry id?")).startswith("**")  # no e-mail asked for


@pytest.fixture
async def connecticut(make_app: Callable[..., App]) -> AsyncIterator[App]:
    from tests.conftest import ready

    async with ready(make_app("ct")) as application:
        yield application


@pytest.mark.parametrize("lang", ["en", "es", "zh_Hans"])
async def test_connecticut_offers_only_what_it_has(connecticut: App, lang: str) -> None:
    member = Chatter(connecticut.engine, f"ct-{lang}", hint=lang)
    text = await member.say("what is the capital of peru")
    assert "Registry ID" not in text and "audit" not in text.lower() and "apelac" not in text
    topics = [choice.payload for choice in member.last[-1].choices]
    assert topics[:-1] and all(p.startswith("topic:ct-") or p == "topic:contact-support" for p in topics[:-1])
    help_text = await member.say("help")
    assert "Withdraw" not in help_text and "Retirarse" not in help_text


@pytest.mark.parametrize(
    "typed", ["I do not want to withdraw from it", "可以告诉我怎么退出吗", "no, which one is on Saturday?"]
)
async def test_more_than_a_yes_at_the_confirmation_withdraws_nobody(app: App, typed: str) -> None:
    member = Chatter(app.engine, f"not-a-yes-{typed}")
    await verify(member, app.sessionmaker, *MARIA, start="/link")
    await member.press_flow("withdraw-training")
    await member.say("Supporting Dual Language Learners")
    assert "Withdrawn" not in await member.say(typed)
    assert await enrollment_status(app, MARIA[0], "T-401") == "enrolled"


@pytest.mark.parametrize(
    ("lang", "typed"), [("en", "ok thanks"), ("es", "vale, gracias"), ("zh_Hans", "好的谢谢")]
)
async def test_a_thank_you_after_an_article_starts_nothing(app: App, lang: str, typed: str) -> None:
    member = Chatter(app.engine, f"thanks-{lang}", hint=lang)
    await member.say(HOW_TO_WITHDRAW[lang])
    assert ASKS_FOR_THE_ID[lang] not in await member.say(typed)


@pytest.mark.parametrize("typed", ["/cancel", "cancel", "cancelar", "取消"])
async def test_cancel_at_a_yes_or_no_question_cancels(app: App, typed: str) -> None:
    member = Chatter(app.engine, f"cancel-{typed}")
    await verify(member, app.sessionmaker, *MARIA, start="/link")
    await member.press_flow("withdraw-training")
    await member.say("Supporting Dual Language Learners")
    await member.say(typed)
    assert "Withdrawn" not in await member.say("yes")  # nothing is waiting for a yes any more
    assert await enrollment_status(app, MARIA[0], "T-401") == "enrolled"


async def test_the_code_typed_with_words_about_a_new_code_is_still_the_code(app: App) -> None:
    member = Chatter(app.engine, "code-with-words")
    await member.say("verify my account")
    await member.say(MARIA[0])
    await member.say(MARIA[1])
    code = await emailed_code(app.sessionmaker, MARIA[1])
    assert "Maria" in await member.say(f"ok here is the new code {code}")


async def test_a_paused_member_is_not_let_in_from_another_chat_even_with_the_right_code(app: App) -> None:
    waiting = Chatter(app.engine, "waiting-at-the-code")
    await waiting.say("verify my account")
    await waiting.say(MARIA[0])
    await waiting.say(MARIA[1])
    code = await emailed_code(app.sessionmaker, MARIA[1])
    guesser = Chatter(app.engine, "guessing-elsewhere")
    await guesser.say("verify my account")
    await guesser.say(MARIA[0])
    await guesser.say(MARIA[1])
    for _ in range(5):
        await guesser.say("000000")
    assert "paused" in await waiting.say(code)
    assert await rows(app, ChatLink) == []


@pytest.mark.parametrize(
    "message",
    [
        "How do I put staff on my program roster?",
        "I am an agent for a sponsor, how do I edit my event?",
        "Do I need to file an appeal if my audit was denied?",
        "My training is tomorrow, what time does it start?",
    ],
)
async def test_questions_that_only_sound_like_a_request_are_answered_as_questions(
    app: App, message: str
) -> None:
    member = Chatter(app.engine, f"sounds-like-{message}")
    text = await member.say(message)
    assert await rows(app, Escalation) == []
    assert "Help desk hours" not in text and "Registry ID? (" not in text


@pytest.mark.parametrize(
    ("lang", "message", "topic_words"),
    [("en", "no puedo subir mis documentos", "document"), ("es", "withdrawing from trainings", "Withdraw")],
)
async def test_a_message_in_another_language_is_read_in_its_own(
    app: App, lang: str, message: str, topic_words: str
) -> None:
    member = Chatter(app.engine, f"other-language-{lang}", hint=lang)
    await member.say("/language " + lang)
    text = await member.say(message)
    assert "Which of these" not in text and "I'm sorry" not in text and "Lo siento" not in text
