"""The Telegram channel end to end: the real python-telegram-bot client against a local Bot API."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import ContextTypes, TypeHandler

from bot.app import App
from bot.channels import telegram as telegram_channel
from bot.channels.telegram import CALLBACK_DATA_LIMIT, SECRET_HEADER, TelegramChannel, split_text, to_html
from bot.i18n import gettext
from bot.registry.models import (
    AuditRequest,
    Conversation,
    Document,
    Enrollment,
    Member,
    Training,
    TranscriptEntry,
)
from tests.fakes.telegram_api import Call, FakeBotAPI
from tests.helpers import count_rows, database_away, latest_mail, one, rows

WEI = ("10000002", "wei.chen@example.org")
JAMES = ("10000003", "james.carter@example.org")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBHOOK_URL = "https://bot.example.org/telegram/webhook"
SECRET = "webhook-secret-for-tests"
TIMEOUT = 10.0

_ids = itertools.count(500)


class Harness:
    """A started channel and the fake API it talks to; knows when an update has been fully handled."""

    def __init__(self, channel: TelegramChannel, api: FakeBotAPI) -> None:
        self.channel = channel
        self.api = api
        self.handled: Counter[int] = Counter()
        self._changed = asyncio.Condition()
        # group 1 runs after the channel's own handler (group 0) has finished with the update
        channel.application.add_handler(TypeHandler(Update, self._mark), group=1)

    async def _mark(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._changed:
            self.handled[update.update_id] += 1
            self._changed.notify_all()

    async def handled_times(self, update_id: int, times: int = 1) -> None:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: self.handled[update_id] >= times)

    async def deliver(self, update: dict[str, Any]) -> list[Call]:
        """Hand an update to the bot (by getUpdates) and return the calls it made while handling it."""
        before = len(self.api.calls)
        await self.api.push_update(update)
        await self.handled_times(update["update_id"])
        assert await self.channel.engine.settle(timeout=TIMEOUT)  # staff have heard of it too
        return self.api.calls[before:]


class TelegramUser:
    """A Telegram user chatting with the bot: types, sends files, presses buttons, reads the replies."""

    def __init__(
        self, harness: Harness, *, user_id: int, language_code: str | None, chat: Any = None
    ) -> None:
        self.harness = harness
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Member"}
        if language_code:
            self.user["language_code"] = language_code
        self.chat = chat or {"id": user_id, "type": "private", "first_name": "Member"}
        self.last: list[Call] = []
        self.calls: list[Call] = []

    def message(self, **content: Any) -> dict[str, Any]:
        update_id = self.harness.api.next_update_id()
        message = {"message_id": next(_ids), "date": int(time.time()), "chat": self.chat, "from": self.user}
        return {"update_id": update_id, "message": {**message, **content}}

    async def send(self, update: dict[str, Any]) -> str:
        self.calls = await self.harness.deliver(update)
        self.last = [call for call in self.calls if call.method == "sendMessage"]
        return "\n".join(call.text for call in self.last)

    async def say(self, text: str) -> str:
        entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return await self.send(self.message(text=text, **({"entities": entities} if text[0] == "/" else {})))

    def button(self, label_part: str) -> tuple[Call, dict[str, Any]]:
        for call in self.last:
            for button in call.buttons:
                if label_part in button["text"] and "callback_data" in button:
                    return call, button
        labels = [button["text"] for call in self.last for button in call.buttons]
        raise AssertionError(f"no button {label_part!r} among {labels}")

    async def press(self, label_part: str) -> str:
        call, button = self.button(label_part)
        return await self.press_data(call, button["callback_data"])

    async def press_data(self, call: Call, data: str) -> str:
        message = {**call.result, "chat": self.chat}
        update = {
            "update_id": self.harness.api.next_update_id(),
            "callback_query": {
                "id": f"cq-{next(_ids)}",
                "from": self.user,
                "chat_instance": "ci-1",
                "data": data,
                "message": message,
            },
        }
        return await self.send(update)


def settings_for(app: App, api: FakeBotAPI, **overrides: Any) -> Any:
    return app.settings.model_copy(
        update={
            "telegram_token": SecretStr(api.token),
            "telegram_base_url": api.base_url,
            "telegram_base_file_url": api.base_file_url,
            **overrides,
        }
    )


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
async def polling(app: App, api: FakeBotAPI) -> AsyncIterator[Harness]:
    """The channel polling the fake API."""
    channel = TelegramChannel(app.engine, settings_for(app, api), poll_timeout=1)
    harness = Harness(channel, api)
    await channel.start()
    try:
        yield harness
    finally:
        await channel.stop()


@pytest.fixture
async def webhook(app: App, api: FakeBotAPI) -> AsyncIterator[tuple[Harness, httpx.AsyncClient]]:
    """The channel in webhook mode, and an HTTP client for its routes."""
    channel = TelegramChannel(
        app.engine,
        settings_for(app, api, telegram_webhook_url=WEBHOOK_URL, telegram_webhook_secret=SecretStr(SECRET)),
    )
    harness = Harness(channel, api)
    await channel.start()
    transport = httpx.ASGITransport(app=Starlette(routes=channel.routes()))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield harness, client
    finally:
        await channel.stop()


async def code_for(app: App, email: str) -> str:
    mail = await latest_mail(app.sessionmaker, email)
    assert mail is not None, "no code was e-mailed"
    found = re.search(r"\b(\d{6})\b", mail.body)
    assert found is not None
    return found.group(1)


# -- 1. a withdrawal in Chinese, with buttons ----------------------------------------------------------------


async def test_a_member_withdraws_in_chinese_with_buttons(app: App, polling: Harness) -> None:
    wei = TelegramUser(polling, user_id=7001, language_code="zh-CN")
    text = await wei.say("怎么退出培训？")
    assert "<b>如何退出已报名的培训</b>" in text  # the article's Markdown as escaped HTML
    assert all(call.params["parse_mode"] == "HTML" for call in wei.last)
    (article,) = wei.last
    assert any(button.get("url") for button in article.buttons)  # the "read more" link: a URL button

    assert "登记号码" in await wei.press("是的，现在开始")
    assert [c.params["callback_query_id"] for c in wei.calls if c.method == "answerCallbackQuery"]
    (edit,) = [c for c in wei.calls if c.method == "editMessageReplyMarkup"]
    assert edit.params["message_id"] == article.result["message_id"]
    kept = [b for row in edit.params["reply_markup"]["inline_keyboard"] for b in row]
    assert kept and all("url" in b for b in kept)  # the choices are gone, the link stays

    assert "电子邮箱" in await wei.say(WEI[0])
    assert "验证码" in await wei.say(WEI[1])
    text = await wei.say(await code_for(app, WEI[1]))
    assert "已经和您的登记系统个人档案绑定" in text and "退出哪一项培训" in text
    assert "您即将退出" in await wei.press("家庭托儿中心")
    text = await wei.press("是")
    assert "办好了" in text and "家庭托儿中心的营养与健康" in text

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
    sent = polling.api.sent(7001)
    assert sent and all(re.search(r"[\u4e00-\u9fff]", call.text) for call in sent)  # every message Chinese


# -- 2. documents: downloaded and stored, or refused before any download -------------------------------------


async def test_documents_are_downloaded_for_an_audit_and_too_large_ones_refused(
    app: App, polling: Harness
) -> None:
    api = polling.api
    james = TelegramUser(polling, user_id=7002, language_code="en")
    await james.say("I want to request an audit")  # the errand, asked outright: it starts at once
    await james.say(JAMES[0])
    await james.say(JAMES[1])
    await james.say(await code_for(app, JAMES[1]))
    await james.press("Continue")
    await james.press("Training")
    await james.say("The 2025 workshop on literacy is missing from my training hours report.")

    api.add_file("doc-1", PDF, path="documents/file_1.pdf")
    document = {
        "file_id": "doc-1",
        "file_unique_id": "u1",
        "file_name": "cert.pdf",
        "mime_type": "application/pdf",
    }
    text = await james.send(james.message(document={**document, "file_size": len(PDF)}))
    assert "Received: cert.pdf" in text
    assert [c.params["file_id"] for c in api.called("getFile")] == ["doc-1"]
    assert api.downloads == ["documents/file_1.pdf"]

    big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 1)
    api.add_file("doc-big", big, path="documents/file_2.pdf")
    huge = {"file_id": "doc-big", "file_unique_id": "u2", "file_name": "huge.pdf", "file_size": len(big)}
    text = await james.send(james.message(document=huge))
    assert '"huge.pdf" is larger than 10 MB' in text
    assert [c.params["file_id"] for c in api.called("getFile")] == ["doc-1"]  # never fetched
    assert api.downloads == ["documents/file_1.pdf"]

    api.add_file("photo-small", b"\xff\xd8\xff small", path="photos/small.jpg")
    api.add_file("photo-large", JPEG, path="photos/large.jpg")
    sizes = [
        {"file_id": "photo-small", "file_unique_id": "ps", "width": 90, "height": 60, "file_size": 12},
        {
            "file_id": "photo-large",
            "file_unique_id": "pl",
            "width": 1280,
            "height": 853,
            "file_size": len(JPEG),
        },
    ]
    assert "Received:" in await james.send(james.message(photo=sizes))
    assert api.downloads[-1] == "photos/large.jpg"  # the largest size only

    await james.press("Done")
    assert "AUD-2026-00001" in await james.press("Yes")
    audit = await one(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    stored = await rows(app, Document, Document.audit_request_id == audit.id)
    assert sorted(d.sha256 for d in stored) == sorted(hashlib.sha256(c).hexdigest() for c in (PDF, JPEG))
    assert {d.filename for d in stored} == {"cert.pdf", "photo-pl.jpg"}


async def test_what_the_channel_says_itself_follows_the_language_the_member_chose(polling: Harness) -> None:
    # Telegram says English, the member asked for Spanish: a refused file is explained in Spanish
    rosa = TelegramUser(polling, user_id=7010, language_code="en")
    assert "español" in (await rosa.say("español")).lower()
    big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 1)
    huge = {"file_id": "doc-es", "file_unique_id": "ues", "file_name": "titulo.pdf", "file_size": len(big)}
    text = await rosa.send(rosa.message(document=huge))
    assert '"titulo.pdf" pesa más de 10 MB' in text
    assert polling.api.called("getFile") == []  # refused before any download


# -- 3 and 4. webhook: the secret, and a redelivered update --------------------------------------------------


def private_update(update_id: int, text: str, *, user_id: int = 7003, lang: str = "en") -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Ana", "language_code": lang}
    return {
        "update_id": update_id,
        "message": {
            "message_id": next(_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": user,
            "text": text,
        },
    }


async def test_the_webhook_checks_the_secret_header(
    webhook: tuple[Harness, httpx.AsyncClient], api: FakeBotAPI
) -> None:
    harness, client = webhook
    (registered,) = api.called("setWebhook")
    assert registered.params["url"] == WEBHOOK_URL and registered.params["secret_token"] == SECRET
    assert api.called("deleteWebhook") == [] and api.polls == 0  # no polling in webhook mode

    update = private_update(90001, "hello")
    assert (await client.post("/telegram/webhook", json=update)).status_code == 403
    wrong = {SECRET_HEADER: "not-the-secret"}
    assert (await client.post("/telegram/webhook", json=update, headers=wrong)).status_code == 403
    assert api.sent() == []

    right = {SECRET_HEADER: SECRET}
    assert (await client.post("/telegram/webhook", json=update, headers=right)).status_code == 200
    await harness.handled_times(90001)
    assert api.sent(7003) != []
    assert (await client.post("/telegram/webhook", content=b"{not json", headers=right)).status_code == 400
    assert harness.channel.healthy()


async def test_a_redelivered_update_changes_nothing(
    app: App, webhook: tuple[Harness, httpx.AsyncClient], api: FakeBotAPI
) -> None:
    harness, client = webhook
    headers = {SECRET_HEADER: SECRET}
    update = private_update(90002, "verify my account", user_id=7004)
    for _ in (1, 2):
        assert (await client.post("/telegram/webhook", json=update, headers=headers)).status_code == 200
    assert harness.handled[90002] == 1  # the process knows it has answered it
    first = [call.text for call in api.sent(7004)]
    assert len(first) == 2  # the introduction and the first question, once

    # after a restart the channel has forgotten the update: Telegram sends it again only when no answer
    # reached it, so the replies may never have been sent; they are sent again, and nothing else happens
    restarted = TelegramChannel(
        app.engine,
        settings_for(app, api, telegram_webhook_url=WEBHOOK_URL, telegram_webhook_secret=SecretStr(SECRET)),
    )
    await restarted.start()
    try:
        transport = httpx.ASGITransport(app=Starlette(routes=restarted.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as second:
            assert (await second.post("/telegram/webhook", json=update, headers=headers)).status_code == 200
    finally:
        await restarted.stop()
    assert [call.text for call in api.sent(7004)] == first + first
    assert await count_rows(app, Conversation) == 1
    assert await count_rows(app, TranscriptEntry) == 3  # the message and its two replies, once


async def test_the_webhook_asks_again_for_an_update_it_could_not_store(
    app: App, webhook: tuple[Harness, httpx.AsyncClient], api: FakeBotAPI, tmp_path: Path
) -> None:
    _, client = webhook
    headers = {SECRET_HEADER: SECRET}
    update = private_update(90003, "olvidé mi contraseña", user_id=7005)
    async with database_away(app, tmp_path):
        for _ in range(3):  # Telegram tries again and again while the answer is not 2xx
            assert (await client.post("/telegram/webhook", json=update, headers=headers)).status_code == 503
    (apology,) = api.sent(7005)  # said once, not at every attempt
    assert "problema técnico" in apology.text and "(855) 645-0826" in apology.text
    assert await count_rows(app, TranscriptEntry) == 0
    assert (await client.post("/telegram/webhook", json=update, headers=headers)).status_code == 200
    answers = api.sent(7005)[1:]
    assert len(answers) == 1 and "Forgot Password" in answers[0].text
    assert await count_rows(app, TranscriptEntry) == 2  # handled once


async def test_polling_confirms_an_update_only_once_it_is_stored(
    app: App, api: FakeBotAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_channel, "POLL_RETRY_FIRST", 0.05)
    monkeypatch.setattr(telegram_channel, "POLL_RETRY_MAX", 0.2)
    channel = TelegramChannel(app.engine, settings_for(app, api), poll_timeout=1)
    kept = private_update(90004, "olvidé mi contraseña", user_id=7006)
    after = private_update(90005, "how do I withdraw from a training?", user_id=7007)
    await channel.start()
    try:
        async with database_away(app, tmp_path):
            await api.push_update(kept)
            await api.wait_for(lambda: api.sent(7006))  # the apology
            polls = api.polls
            async with asyncio.timeout(TIMEOUT):
                while api.polls < polls + 3:  # fetched again and again: never confirmed
                    await asyncio.sleep(0.05)
        await api.push_update(after)
        await api.wait_for(lambda: len(api.sent(7006)) == 2 and api.sent(7007))
    finally:
        await channel.stop()
    apology, answer = api.sent(7006)
    assert "(855) 645-0826" in apology.text and "Forgot Password" in answer.text
    assert len(api.sent(7007)) == 1
    assert await count_rows(app, TranscriptEntry) == 4
    # both were confirmed in the end: the next process is not given them again
    successor = TelegramChannel(app.engine, settings_for(app, api), poll_timeout=1)
    await successor.start()
    try:
        polls = api.polls
        async with asyncio.timeout(TIMEOUT):
            while api.polls < polls + 2:
                await asyncio.sleep(0.05)
    finally:
        await successor.stop()
    assert len(api.sent(7006)) == 2 and len(api.sent(7007)) == 1


# -- 5. the command menu in three languages ------------------------------------------------------------------


async def test_commands_are_registered_in_each_language(polling: Harness) -> None:
    calls = polling.api.called("setMyCommands")
    by_language = {call.params.get("language_code"): call.params["commands"] for call in calls}
    assert set(by_language) == {None, "en", "es", "zh"}
    names = ["start", "help", "language", "cancel", "human", "hours"]
    for code, lang in (("en", "en"), ("es", "es"), ("zh", "zh_Hans")):
        commands = by_language[code]
        assert [c["command"] for c in commands] == names
        human = next(c["description"] for c in commands if c["command"] == "human")
        assert human == gettext(lang, "Talk to a person")
    assert next(c["description"] for c in by_language["zh"] if c["command"] == "human") == "找真人客服"
    assert by_language["es"] != by_language["en"] != by_language["zh"]
    assert all(re.search(r"[\u4e00-\u9fff]", c["description"]) for c in by_language["zh"])


# -- 6. group chats ------------------------------------------------------------------------------------------


async def test_a_group_gets_one_polite_private_only_reply(app: App, polling: Harness) -> None:
    group = {"id": -100200300, "type": "supergroup", "title": "Teachers"}
    ana = TelegramUser(polling, user_id=7005, language_code="es", chat=group)
    text = await ana.say("/help")
    (reply,) = ana.last
    assert "chat privado" in text
    assert reply.params["chat_id"] == group["id"] and reply.params["reply_parameters"]["message_id"]
    assert reply.buttons[0]["url"] == "https://t.me/registry_help_bot"
    assert await ana.say("hola?") == ""  # said once per group
    assert await count_rows(app, Conversation) == 0  # the engine was never called


# -- buttons, polling mode, text -----------------------------------------------------------------------------


async def test_a_button_this_process_does_not_know_is_answered_as_stale(polling: Harness) -> None:
    member = TelegramUser(polling, user_id=7006, language_code="en")
    await member.say("/start")
    menu = member.last[-1]
    text = await member.press_data(menu, "#" + "0" * 32)
    assert "earlier message" in text
    assert [c.method for c in member.calls][:2] == ["answerCallbackQuery", "editMessageReplyMarkup"]
    assert polling.channel.routes() == [] and polling.channel.healthy()


def test_long_payloads_become_short_tokens(app: App) -> None:
    channel = TelegramChannel(
        app.engine, app.settings.model_copy(update={"telegram_token": SecretStr("1:x")})
    )
    short = "s:withdraw-training:confirm:yes"
    long = "s:audit-request:documents:" + "x" * 100
    assert channel.callback_data(short) == short
    token = channel.callback_data(long)
    assert len(token.encode()) <= CALLBACK_DATA_LIMIT and channel.payload_of(token) == long
    assert channel.callback_data(long) == token  # the same button, the same token
    assert channel.payload_of("#" + "f" * 32) is None


def test_text_is_escaped_and_split_under_telegram_limit() -> None:
    assert to_html("**Bold** <script> & [site](https://x.example/?a=1&b=2)") == (
        '<b>Bold</b> &lt;script&gt; &amp; <a href="https://x.example/?a=1&amp;b=2">site</a>'
    )
    paragraph = "**Title**\n" + "word & more " * 300
    chunks = split_text("\n\n".join([paragraph] * 4))
    assert len(chunks) > 1 and all(len(chunk) <= 4096 for chunk in chunks)
    assert all(chunk.count("<b>") == chunk.count("</b>") for chunk in chunks)
    assert split_text("&" * 9000) and all(len(c) <= 4096 for c in split_text("&" * 9000))
    assert split_text("这是一个很长的句子" * 1000)[0].startswith("这是")


async def test_logs_hold_neither_the_token_nor_what_members_wrote(
    polling: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    member = TelegramUser(polling, user_id=7007, language_code="en")
    await member.say("my e-mail is someone.private@example.org")
    assert member.last
    assert "HTTP Request" in caplog.text  # httpx logged its requests, with the token redacted
    assert polling.api.token not in caplog.text
    assert "someone.private" not in caplog.text


async def test_a_start_that_fails_undoes_itself(app: App, api: FakeBotAPI) -> None:
    channel = TelegramChannel(app.engine, settings_for(app, api, telegram_token=SecretStr("999:wrong")))
    with pytest.raises(InvalidToken) as raised:
        await channel.start()
    assert "999:wrong" not in str(raised.value)  # the error (which the server logs) does not quote the token
    assert not channel.healthy()
    assert api.called("setMyCommands") == []


async def test_telegram_429_and_5xx_are_retried_and_the_member_gets_one_message(
    app: App, polling: Harness
) -> None:
    polling.api.failures["sendMessage"] = [
        (429, {"parameters": {"retry_after": 1}}),
        (502, {}),
    ]
    member = TelegramUser(polling, user_id=7301, language_code="en")
    text = await member.say("I forgot my password")
    assert "Forgot Password" in text
    attempts = [c.method for c in polling.api.calls if c.method.startswith("sendMessage")]
    assert attempts == ["sendMessage (429)", "sendMessage (502)", "sendMessage"]
