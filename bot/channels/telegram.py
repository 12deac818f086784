"""The Telegram channel: python-telegram-bot updates in, the engine's replies out as Telegram messages.

Long polling when only a token is configured; webhook mode (a Starlette route, the secret header checked)
when a public webhook URL is configured too. Everything else is the engine's business: this module only
translates between Telegram's shapes and ``Inbound`` / ``Reply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    BotCommand,
    CallbackQuery,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    PhotoSize,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import documents
from bot.channels.memory import Forget
from bot.config import Settings
from bot.engine import Engine, NotStored
from bot.i18n import N_, gettext, resolve_locale
from bot.messages import Attachment, Choice, Inbound, Link, Reply
from bot.render import render_for

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query")
MAX_WEBHOOK_BODY = 1024 * 1024  # an update is a few kilobytes; anything this large is not from Telegram
CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for a button's callback_data
TOKEN_PREFIX = "#"  # callback_data starting with this is a short token standing for a longer payload
STALE_PAYLOAD = "stale"  # the engine answers any payload it does not know with its "stale button" reply
REMEMBERED = 10_000  # bounded memories: long payloads, recent update ids, groups already answered

# Slash commands offered in Telegram's menu; the engine understands them as typed text.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("Start over and see what I can help with")),
    ("help", N_("What I can help with")),
    ("language", N_("Change the language")),
    ("cancel", N_("Cancel what we are doing")),
    ("human", N_("Talk to a person")),
    ("hours", N_("When the help desk is open")),
)
# Telegram's language_code of each command list, and the catalog it comes from.
COMMAND_LANGUAGES = {"en": "en", "es": "es", "zh": "zh_Hans"}
PRIVATE_CHAT_BUTTON = N_("Open a private chat")

# Time periods (a 429's retry_after) as timedelta, python-telegram-bot's coming default; without this opt-in
# reading one raises a deprecation warning on every flood-control answer.
os.environ.setdefault("PTB_TIMEDELTA", "true")
POLL_RETRY_FIRST, POLL_RETRY_MAX = 1.0, 60.0  # seconds before fetching again after a failure
APOLOGY_EVERY = 600.0  # seconds: a chat whose message waits for the database hears why once in this time
SEND_ATTEMPTS = 4  # a 429 or a 5xx from Telegram is retried this many times in all
MAX_RETRY_WAIT = 30.0  # seconds; a longer Retry-After is cut short (the next attempt may wait again)
_BOLD = re.compile(r"\*\*(?=\S)([^\n]*?\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


# -- text ----------------------------------------------------------------------------------------------------


def to_html(text: str) -> str:
    """The engine's light Markdown (``**bold**``, ``[label](url)``) as Telegram HTML, everything escaped."""
    escaped = html.escape(text, quote=False)

    def link(match: re.Match[str]) -> str:
        return f'<a href="{match[2].replace(chr(34), "&quot;")}">{match[1]}</a>'

    return _BOLD.sub(r"<b>\1</b>", _LINK.sub(link, escaped))


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """``text`` as HTML chunks of at most ``limit``, cut between lines, else between words, else anywhere.

    Markup never spans a line, so each line converts on its own and a chunk never cuts a tag in two.
    """
    pieces: list[str] = []
    for line in text.split("\n"):
        if telegram_length(to_html(line)) <= limit:
            pieces.append(to_html(line))
        else:
            pieces.extend(_split_line(line, limit))
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        extra = telegram_length(piece) + (1 if current else 0)
        if current and size + extra > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
            extra = telegram_length(piece)
        current.append(piece)
        size += extra
    if current:
        chunks.append("\n".join(current))
    trimmed = [chunk.strip("\n") for chunk in chunks]
    return [chunk for chunk in trimmed if chunk.strip()] or ["…"]


def _split_line(line: str, limit: int) -> list[str]:
    """One over-long line as HTML pieces, cut between words, or inside a word longer than a piece."""
    step = limit // 5  # "&" escapes to five characters: a slice this long always fits
    words: list[str] = []
    for word in line.split(" "):
        words.extend([word[i : i + step] for i in range(0, len(word), step)] or [""])
    pieces: list[str] = []
    current: str | None = None
    for word in words:
        candidate = word if current is None else f"{current} {word}"
        if current is not None and telegram_length(to_html(candidate)) > limit:
            pieces.append(to_html(current))
            current = word
        else:
            current = candidate
    if current:
        pieces.append(to_html(current))
    return pieces


TOO_LARGE = "flows/documents/too_large"  # the engine's own wording for a file over the limit
DOWNLOAD_FAILED = "download_failed"  # under channels/telegram/


def language_of(user: User | None, default: str) -> str:
    """The member's language for what the channel says itself, from Telegram's language_code."""
    return resolve_locale(user.language_code if user else None) or default


class _RedactToken(logging.Filter):
    """Keeps the bot token out of log lines (httpx logs every request URL, token included)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), ()
        return True


# -- the channel ---------------------------------------------------------------------------------------------


class TelegramChannel:
    """Members chat with the assistant in private Telegram chats.

    ``start()`` initializes the bot, registers the command menu in each language, then polls or sets the
    webhook; ``routes()`` gives the webhook route to mount in webhook mode; ``stop()`` lets in-flight turns
    finish before shutting down.
    """

    name = CHANNEL

    def __init__(self, engine: Engine, settings: Settings, *, poll_timeout: float = 10.0) -> None:
        if settings.telegram_token is None:
            raise ValueError("REGISTRY_BOT_TELEGRAM_TOKEN is not set")
        self.engine = engine
        self.settings = settings
        self.webhook_url = settings.telegram_webhook_url
        self.poll_timeout = poll_timeout
        secret = settings.telegram_webhook_secret
        # Without a configured secret, one per process: the webhook is registered again at every start.
        self.webhook_secret = secret.get_secret_value() if secret else secrets.token_urlsafe(32)
        self._token = settings.telegram_token.get_secret_value()
        self._key = secrets.token_bytes(16)
        self._payloads: Forget[str, str] = Forget(REMEMBERED)
        self._seen_updates: Forget[int, None] = Forget(REMEMBERED)
        self._groups_told: Forget[int, None] = Forget(REMEMBERED)
        self._apologized: Forget[int, float] = Forget(REMEMBERED)
        self._again: set[int] = set()  # updates to be delivered again (not stored, or replies not sent)
        self._redact = _RedactToken(self._token)
        self._running = False
        self._polling: asyncio.Task[None] | None = None
        self._fetching = False
        self._stopping = asyncio.Event()
        self._offset: int | None = None  # the first update not yet handled, for the next getUpdates
        self._confirmed: int | None = None  # the offset Telegram was last given
        # No Updater: it confirms every update it has fetched, handled or not. The channel polls itself and
        # confirms an update only once its turn is stored and its replies sent (see ``_poll``).
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(settings.telegram_base_url)
            .base_file_url(settings.telegram_base_file_url)
            .updater(None)
        )
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        groups = filters.ChatType.GROUPS & filters.UpdateType.MESSAGE
        self.application.add_handler(CallbackQueryHandler(self._on_button))
        self.application.add_handler(MessageHandler(private, self._on_private_message))
        self.application.add_handler(MessageHandler(groups, self._on_group_message))
        self.application.add_error_handler(self._on_error)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Initialize the bot, set the command menus, then start polling or register the webhook.

        A start that fails half-way undoes itself (the server stops only the channels that started).
        """
        logging.getLogger("httpx").addFilter(self._redact)
        try:
            await self._start()
        except InvalidToken:
            await self.stop()
            raise InvalidToken("the Telegram bot token was rejected") from None  # PTB's message quotes it
        except BaseException:
            await self.stop()
            raise
        self._running = True

    async def _start(self) -> None:
        await self.application.initialize()
        await self.set_commands()
        await self.application.start()
        if self.webhook_url:
            await self.application.bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            logger.info("telegram: webhook mode")
        else:
            await self.application.bot.delete_webhook()  # Telegram refuses getUpdates while one is set
            self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
            logger.info("telegram: polling")

    async def stop(self) -> None:
        """Stop taking updates, let the turns under way finish and answer, then shut down."""
        self._running = False
        self._stopping.set()
        try:
            if self._polling is not None:
                if self._fetching:  # waiting for Telegram, with nothing fetched: stop waiting
                    self._polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._polling  # a batch under way is finished first
                self._polling = None
                await self._confirm()
            if self.application.running:
                await self.application.stop()
        finally:
            await self.application.shutdown()
            await self.application.bot.shutdown()  # closes its connections even after a failed start
            logging.getLogger("httpx").removeFilter(self._redact)

    def healthy(self) -> bool:
        """Started and still taking updates (polling, or the application behind the webhook)."""
        polling = bool(self.webhook_url) or (self._polling is not None and not self._polling.done())
        return self._running and self.application.running and polling

    def routes(self) -> list[BaseRoute]:
        """The webhook endpoint in webhook mode; nothing in polling mode."""
        if not self.webhook_url:
            return []
        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"], name="telegram-webhook")]

    async def set_commands(self) -> None:
        """The command menu in each language Telegram may show, and a default in the registry's language."""
        bot = self.application.bot
        default = self.engine.profile.default_language
        await bot.set_my_commands(self.commands(default))
        for code, lang in COMMAND_LANGUAGES.items():
            await bot.set_my_commands(self.commands(lang), language_code=code)

    @staticmethod
    def commands(lang: str) -> list[BotCommand]:
        return [BotCommand(command, gettext(lang, description)) for command, description in COMMANDS]

    # -- webhook ---------------------------------------------------------------------------------------------

    async def _webhook(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            return Response(status_code=403)
        if not self.application.running:
            return Response(status_code=503)  # Telegram delivers it again later
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BODY:
            return Response(status_code=413)
        try:
            data = json.loads(body)
            update = Update.de_json(data, self.application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError, AttributeError):
            update = None
        if update is None:
            return Response(status_code=400)
        # confirmed only once its turn is stored and the replies sent: otherwise Telegram delivers it again
        return Response(status_code=200 if await self._process(update) else 503)

    # -- polling ---------------------------------------------------------------------------------------------

    async def _poll(self) -> None:
        """Fetch updates and handle each batch; the offset confirms an update only once it is handled, so
        one that could not be stored is fetched again (the updates after it that were handled are
        remembered and skipped)."""
        delay = POLL_RETRY_FIRST
        while self._running:
            failed = False
            try:
                self._fetching = True
                asked = self._offset
                updates = await self.application.bot.get_updates(
                    offset=asked, timeout=int(self.poll_timeout), allowed_updates=list(ALLOWED_UPDATES)
                )
                self._confirmed = asked
            except TelegramError as error:
                logger.warning("telegram polling failed: %s", type(error).__name__)
                updates, failed = (), True
            finally:
                self._fetching = False  # from here on, stopping waits for the batch
            handled = await asyncio.gather(*(self._process(update) for update in updates))
            for update, done in zip(updates, handled, strict=True):
                if not done:
                    break
                self._offset = update.update_id + 1
            if failed or not all(handled):
                with contextlib.suppress(TimeoutError):  # a stop ends the wait
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, POLL_RETRY_MAX)
            else:
                delay = POLL_RETRY_FIRST

    async def _confirm(self) -> None:
        """Tell Telegram which updates were handled since the last fetch (the next process starts after)."""
        if self._offset is not None and self._offset != self._confirmed:
            try:
                await self.application.bot.get_updates(offset=self._offset, timeout=0, limit=1)
            except TelegramError as error:  # they come again to the next process, which answers them
                logger.warning("telegram: could not confirm the last updates: %s", type(error).__name__)

    async def _process(self, update: Update) -> bool:
        """Handle one update; False when Telegram must deliver it again (its message could not be stored,
        or its replies could not be sent: they are kept with the delivery and sent then)."""
        if update.update_id in self._seen_updates:
            return True  # this process has handled it already
        await self.application.process_update(update)
        if update.update_id in self._again:
            self._again.discard(update.update_id)
            return False
        self._seen_updates.remember(update.update_id, None)
        return True

    # -- handlers --------------------------------------------------------------------------------------------

    async def _on_private_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None:
            return
        attachments, refusals = await self._attachments(message, user)
        for refusal in refusals:
            await self._send(message.chat_id, Reply(refusal))
        text = message.text or message.caption or ""
        if refusals and not attachments:
            return  # the only file was refused: nothing for the engine to do
        await self._turn(
            update, message.chat_id, self._inbound(update, user, text=text, attachments=tuple(attachments))
        )

    @staticmethod
    def _inbound(update: Update, user: User, **content: Any) -> Inbound:
        """The engine's view of an update: the update id is the delivery id, so a redelivery is ignored."""
        return Inbound(
            channel=CHANNEL,
            user_id=str(user.id),
            delivery_id=str(update.update_id),
            language_hint=user.language_code,
            display_name=user.first_name,
            **content,
        )

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        await self._quietly(query.answer())
        message = query.message
        if not isinstance(message, Message) or message.chat.type != ChatType.PRIVATE:
            return  # a message too old to reach, or not a private chat
        await self._remove_choices(query, message)
        payload = self.payload_of(query.data or "") or STALE_PAYLOAD
        await self._turn(update, message.chat_id, self._inbound(update, user, payload=payload))

    async def _on_group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """In a group, say once that the assistant talks only in private chats; the engine is not called."""
        message = update.message
        if message is None or message.chat_id in self._groups_told:
            return
        self._groups_told.remember(message.chat_id, None)
        lang = language_of(update.effective_user, self.engine.profile.default_language)
        text = self._render("private_only", lang)
        username = self.application.bot.username
        links = (Link(gettext(lang, PRIVATE_CHAT_BUTTON), f"https://t.me/{username}"),) if username else ()
        await self._send(message.chat_id, Reply(text, links=links), reply_to=message.message_id)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # the exception's message may quote member data (SQL parameters, texts): log its type only
        error = context.error
        update_id = update.update_id if isinstance(update, Update) else None
        logger.error("telegram update %s failed: %s", update_id, type(error).__name__)
        logger.debug("telegram update failure", exc_info=error)
        chat = update.effective_chat if isinstance(update, Update) else None
        if isinstance(update, Update) and chat is not None and chat.type == ChatType.PRIVATE:
            lang = await self._language(update.effective_user)
            try:
                await self._send(chat.id, Reply(self._render("error", lang)))
            except TelegramError as failure:
                logger.warning("telegram: could not say so: %s", type(failure).__name__)

    async def _language(self, user: User | None) -> str:
        """The language for what the channel says itself: the conversation's, else Telegram's language_code.
        Asked only when there is something to say (a refused file, a failure): it costs a read."""
        if user is not None:
            chosen = await self.engine.conversation_language(CHANNEL, str(user.id))
            if chosen:
                return chosen
        return language_of(user, self.engine.profile.default_language)

    # -- turns -----------------------------------------------------------------------------------------------

    async def _turn(self, update: Update, chat_id: int, inbound: Inbound) -> None:
        """Hand the message to the engine and send the replies; when the message could not be stored, or
        Telegram would not take the replies, the update is to be delivered again (``_process``)."""
        try:
            result = await self.engine.turn(inbound)
        except NotStored as problem:
            self._again.add(update.update_id)
            await self._apologize(chat_id, problem.replies)
            return
        try:
            for reply in result.replies:
                await self._send(chat_id, reply)
        except NetworkError as error:
            if isinstance(error, BadRequest):
                raise
            logger.warning(
                "telegram: replies not sent (%s); the update will come again", type(error).__name__
            )
            self._again.add(update.update_id)

    async def _apologize(self, chat_id: int, replies: list[Reply]) -> None:
        """Say once in a while that the message waits for the database (each redelivery would repeat it)."""
        now = asyncio.get_running_loop().time()
        told = self._apologized.get(chat_id)
        if told is not None and now - told < APOLOGY_EVERY:
            return
        self._apologized.remember(chat_id, now)
        try:
            for reply in replies:
                await self._send(chat_id, reply)
        except TelegramError as failure:
            logger.warning("telegram: could not apologize: %s", type(failure).__name__)

    async def _attachments(self, message: Message, user: User) -> tuple[list[Attachment], list[str]]:
        """Download the message's document or photo, unless Telegram says it is over the size limit; the
        refusals are in the member's language."""
        files: list[tuple[Document | PhotoSize, str, str]] = []
        if message.document:
            document = message.document
            name = documents.clean_filename(document.file_name or "")
            files.append((document, name, document.mime_type or ""))
        if message.photo:
            largest = max(message.photo, key=lambda size: (size.file_size or 0, size.width * size.height))
            files.append((largest, f"photo-{largest.file_unique_id}.jpg", "image/jpeg"))
        attachments: list[Attachment] = []
        refusals: list[str] = []
        langs: list[str] = []  # the member's language, looked up once and only if something is refused

        async def refuse(template: str, filename: str) -> None:
            if not langs:
                langs.append(await self._language(user))
            refusals.append(self._render(template, langs[0], name=filename, channel=template != TOO_LARGE))

        for file, filename, declared in files:
            if (file.file_size or 0) > documents.MAX_BYTES:  # refused before any download
                await refuse(TOO_LARGE, filename)
                continue
            try:
                remote = await file.get_file()
                if (remote.file_size or 0) > documents.MAX_BYTES:
                    await refuse(TOO_LARGE, filename)
                    continue
                content = bytes(await remote.download_as_bytearray())
            except TelegramError as error:
                logger.warning("telegram file download failed: %s", type(error).__name__)
                await refuse(DOWNLOAD_FAILED, filename)
                continue
            attachments.append(Attachment(filename, content, declared))
        return attachments, refusals

    def _render(self, template: str, lang: str, /, *, channel: bool = True, **context: Any) -> str:
        name = f"channels/telegram/{template}" if channel else template
        return render_for(self.engine.profile, name, lang, **context)

    # -- buttons ---------------------------------------------------------------------------------------------

    def callback_data(self, payload: str) -> str:
        """A button's callback_data: the payload itself when it fits in 64 bytes, else a short token."""
        raw = payload.encode()
        if len(raw) <= CALLBACK_DATA_LIMIT and not payload.startswith(TOKEN_PREFIX):
            return payload
        token = TOKEN_PREFIX + hashlib.blake2b(raw, key=self._key, digest_size=16).hexdigest()
        self._payloads.remember(token, payload)
        return token

    def payload_of(self, data: str) -> str | None:
        """The payload a pressed button stands for; None for a token this process no longer knows."""
        if data.startswith(TOKEN_PREFIX):
            return self._payloads.get(data)
        return data or None

    def keyboard(self, choices: Iterable[Choice], links: Iterable[Link]) -> InlineKeyboardMarkup | None:
        """Choices as callback buttons and links as URL buttons, one per row (labels are often long)."""
        rows = [[InlineKeyboardButton(c.label, callback_data=self.callback_data(c.payload))] for c in choices]
        rows += [[InlineKeyboardButton(link.label, url=link.url)] for link in links]
        return InlineKeyboardMarkup(rows) if rows else None

    async def _remove_choices(self, query: CallbackQuery, message: Message) -> None:
        """Take the choices off the message whose button was pressed; its links stay."""
        markup = message.reply_markup
        kept = [
            [button] for row in (markup.inline_keyboard if markup else ()) for button in row if button.url
        ]
        await self._quietly(query.edit_message_reply_markup(InlineKeyboardMarkup(kept) if kept else None))

    # -- sending ---------------------------------------------------------------------------------------------

    async def push(self, user_id: str, replies: list[Reply]) -> bool:
        """Send replies nobody asked for this turn (a help desk answer, a decision) to a private chat."""
        if not user_id.lstrip("-").isdigit() or not self._running:
            return False
        for reply in replies:
            await self._send(int(user_id), reply)
        return True

    async def _send(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        """One reply as one or more messages (4096 characters each); buttons go under the last one."""
        text = reply.text
        url_links = [link for link in reply.links if link.url.startswith(("https://", "http://"))]
        other_links = [link for link in reply.links if link not in url_links]
        if other_links:  # e.g. mailto: links cannot be buttons
            text += "\n\n" + "\n".join(f"{link.label}: {link.url}" for link in other_links)
        chunks = split_text(text)
        markup = self.keyboard(reply.choices, url_links)
        for number, chunk in enumerate(chunks, start=1):
            last = number == len(chunks)
            try:
                await self._with_retries(
                    functools.partial(
                        self.application.bot.send_message,
                        chat_id,
                        chunk,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup if last else None,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                        reply_parameters=(
                            ReplyParameters(reply_to, allow_sending_without_reply=True)
                            if reply_to and number == 1
                            else None
                        ),
                    )
                )
            except Forbidden:
                logger.info("telegram: the member has blocked the bot")
                return

    @staticmethod
    async def _with_retries(send: Callable[[], Awaitable[Any]]) -> Any:
        """Send, waiting as long as Telegram asks after a 429 and backing off after a 5xx, a few times.

        A 429 means the message was not sent, so retrying cannot duplicate it; a server error is retried
        with backoff too (Telegram answers those before accepting a message).
        """
        for attempt in range(SEND_ATTEMPTS):
            try:
                return await send()
            except RetryAfter as error:
                wait = error.retry_after
                delay = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            except NetworkError as error:
                if isinstance(error, BadRequest | Forbidden) or attempt == SEND_ATTEMPTS - 1:
                    raise
                delay = 0.5 * 2**attempt
            if attempt == SEND_ATTEMPTS - 1:
                break
            logger.info("telegram: sending again in %.1f s", delay)
            await asyncio.sleep(min(delay, MAX_RETRY_WAIT))
        raise TimedOut("Telegram kept refusing the message")

    @staticmethod
    async def _quietly(call: Any) -> None:
        """Await a cosmetic call (answer a button, edit a keyboard) whose failure must not stop the turn."""
        try:
            await call
        except BadRequest as error:  # "message is not modified", a query too old to answer, ...
            logger.debug("telegram call refused: %s", type(error).__name__)
