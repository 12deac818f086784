"""Choosing the language: platform tags, the message's own language, explicit choices, persistence."""

from __future__ import annotations

import pytest

from bot.app import App, load_knowledge
from bot.config import PROJECT_DIR
from bot.i18n import resolve_locale
from bot.intents import language_choice
from bot.language import detect_language
from tests.helpers import Chatter


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh-CN", "zh_Hans"),
        ("zh-Hans-CN", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh-TW", "zh_Hans"),
        ("es-MX", "es"),
        ("es-419", "es"),
        ("es", "es"),
        ("en-US", "en"),
        ("en", "en"),
        ("fr-FR", None),
        ("", None),
        (None, None),
        ("not a tag!", None),
    ],
)
def test_platform_tags_map_to_our_languages(tag: str | None, expected: str | None) -> None:
    assert resolve_locale(tag) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("How do I withdraw from a training?", "en"),
        ("como me retiro de una capacitacion", "es"),  # Spanish without accents is still Spanish
        ("olvide mi contrasena", "es"),
        ("¿Dónde encuentro mi número?", "es"),
        ("如何申请资格审核？", "zh_Hans"),
        ("我忘記了我的密碼", "zh_Hans"),  # Traditional characters
        ("我的registry ID在哪里", "zh_Hans"),  # mixed scripts
        ("my password", "en"),
        ("password", None),  # used in Spanish articles too: keeps the conversation's language
        ("10000001", None),
    ],
)
def test_the_language_of_a_message(message: str, expected: str | None) -> None:
    assert detect_language(message, load_knowledge(PROJECT_DIR / "knowledge")) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("español", "es"),
        ("Spanish please", "es"),
        ("en español", "es"),
        ("中文", "zh_Hans"),
        ("English", "en"),
        ("ingles", "en"),
        ("请用中文", "zh_Hans"),
        ("I speak Spanish at work", None),
        ("how do I enroll", None),
    ],
)
def test_explicit_language_choices(message: str, expected: str | None) -> None:
    assert language_choice(message) == expected


async def test_platform_hint_decides_first_contact(app: App) -> None:
    member = Chatter(app.engine, "zh-user", hint="zh-Hans-CN")
    text = await member.say("/start")
    assert "您好" in text or "你好" in text


async def test_the_members_words_beat_the_platform_hint(app: App) -> None:
    member = Chatter(app.engine, "hint-es", hint="es-MX")
    text = await member.say("How do I reset my password?")
    assert "Forgot Password" in text and "contraseña" not in text.lower()


async def test_an_explicit_choice_is_remembered(app: App) -> None:
    member = Chatter(app.engine, "chooser")
    assert "español" in await member.say("español")
    text = await member.say("registry id")  # ambiguous words keep the chosen language
    assert "Registry" in text and ("Dónde" in text or "número" in text or "perfil" in text)
    text = await member.say("中文")
    assert "中文" in text
    assert "密码" in await member.say("I forgot my password")  # explicit choice beats the message's language


async def test_language_switch_mid_flow_repeats_the_question(app: App) -> None:
    member = Chatter(app.engine, "switcher")
    await member.say("I want to talk to a person")
    text = await member.say("español")
    assert "español" in text
    assert "ayuda" in member.last[-1].text.lower()  # the hand-off question again, now in Spanish
