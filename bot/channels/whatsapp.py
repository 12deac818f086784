"""The WhatsApp channel: Cloud API webhooks in, the engine's replies out as WhatsApp messages (via pywa).

Meta calls ``/whatsapp/webhook``: a ``GET`` to verify the subscription, then a signed ``POST`` per batch of
messages and status changes. A message is confirmed (200) only once its turn is stored; otherwise Meta is
answered 503 and delivers it again. Anything may be sent to a number for 24 hours after it last wrote (the
customer service window, kept in the database); after that only an approved template.

The phone number (``wa_id``) is the chat id: it says which chat, never who the member is.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pywa.errors import ReEngagementMessage, WhatsAppError
from pywa.types.callback import Button, Section, SectionList, SectionRow
from pywa.types.templates import TemplateLanguage
from pywa_async.client import WhatsApp
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot import documents
from bot.channels.memory import Forget
from bot.config import Settings
from bot.engine import Engine, NotStored
from bot.messages import Attachment, Choice, Inbound, Reply
from bot.registry import repo
from bot.render import render_for

logger = logging.getLogger(__name__)

CHANNEL = "whatsapp"
WEBHOOK_PATH = "/whatsapp/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_WEBHOOK_BODY = 1024 * 1024  # a batch of messages is a few kilobytes
WINDOW = timedelta(hours=24)  # WhatsApp's customer service window after the member's last message
TEXT_LIMIT = 4096  # characters of a text message
BODY_LIMIT = 1024  # characters of an interactive message's body
BUTTONS_MAX, BUTTON_TITLE = 3, 20  # reply buttons in a message, characters of a button's title
ROWS_MAX, ROW_TITLE, ROW_DESCRIPTION = 10, 24, 72  # rows of a list message and the lengths of a row
LIST_BUTTON = 20  # characters of the button that opens a list
ID_LIMIT = 200  # characters of a button's or a row's id (a row's limit, the smaller of the two)
TEMPLATE_PARAMETER = 1000  # characters of the template's one variable (its body is 1024 at most)
TOKEN_PREFIX = "#"  # an id starting with this is a short token standing for a longer payload
STALE_PAYLOAD = "stale"  # the engine answers any payload it does not know with its "stale button" reply
REMEMBERED = 10_000  # bounded memories: long payloads, messages answered, apologies
APOLOGY_EVERY = 600.0  # seconds: a number whose message waits for the database hears why once in this time
IGNORED = frozenset({"reaction", "system", "unsupported", "request_welcome"})  # nothing to answer
# The template's language code for each of the assistant's languages.
TEMPLATE_LANGUAGES = {"en": "en", "es": "es", "zh_Hans": "zh_CN"}
TOO_LARGE = "flows/documents/too_large"  # the engine's own wording for a file over the limit
DOWNLOAD_FAILED = "download_failed"  # under channels/whatsapp/
_BOLD = re.compile(r"\*\*(?=\S)([^\n]*?\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


# -- text ----------------------------------------------------------------------------------------------------


def to_whatsapp(text: str) -> str:
    """The engine's light Markdown in WhatsApp's: ``**bold**`` as ``*bold*``, ``[label](url)`` as
    ``label (url)`` (WhatsApp shows a bare address as a link)."""
    return _BOLD.sub(r"*\1*", _LINK.sub(r"\1 (\2)", text))


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in chunks of at most ``limit`` characters, cut between lines, else between words, else
    anywhere."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        pieces = [line] if len(line) <= limit else _split_line(line, limit)
        for piece in pieces:
            candidate = f"{current}\n{piece}" if current else piece
            if current and len(candidate) > limit:
                chunks.append(current)
                current = piece
            else:
                current = candidate
    chunks.append(current)
    trimmed = [chunk.strip("\n") for chunk in chunks]
    return [chunk for chunk in trimmed if chunk.strip()] or ["…"]


def _split_line(line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        while len(word) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > limit:
            pieces.append(current)
            current = word
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def shorten(label: str, limit: int) -> str:
    """``label`` in at most ``limit`` characters: cut after a whole word when one ends far enough in,
    with an ellipsis."""
    label = " ".join(label.split())
    if len(label) <= limit:
        return label
    cut = label[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """Whether ``header`` is ``sha256=`` and the HMAC-SHA256 of ``body`` with the app secret."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.strip().encode(), expected.encode())


# -- the channel ---------------------------------------------------------------------------------------------


class WhatsAppChannel:
    """Members chat with the assistant from WhatsApp, through a WhatsApp Business number.

    ``routes()`` gives the webhook (Meta calls it; nothing is polled); ``push()`` sends what staff say later,
    within the customer service window or as the configured template.
    """

    name = CHANNEL

    def __init__(self, engine: Engine, settings: Settings) -> None:
        token, phone_id = settings.whatsapp_token, settings.whatsapp_phone_number_id
        secret, verify_token = settings.whatsapp_app_secret, settings.whatsapp_verify_token
        if token is None or not phone_id or secret is None or verify_token is None:
            raise ValueError("the WhatsApp token, phone number id, app secret and verify token must be set")
        self.engine = engine
        self.settings = settings
        self.template = settings.whatsapp_template or None
        self._secret = secret.get_secret_value()
        self._verify_token = verify_token.get_secret_value()
        self._key = hashlib.sha256(self._secret.encode()).digest()[:16]
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self.client = WhatsApp(phone_id=phone_id, token=token.get_secret_value(), session=self._http)
        # pywa aims at graph.facebook.com/v<version>; keep its version, on the configured server
        origin = settings.whatsapp_api_url.rstrip("/")
        self._http.base_url = httpx.URL(origin + self._http.base_url.path)
        self._payloads: Forget[str, str] = Forget(REMEMBERED)
        self._answered: Forget[str, None] = Forget(REMEMBERED)  # messages whose replies were sent
        self._apologized: Forget[str, float] = Forget(REMEMBERED)
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        logger.info("whatsapp: webhook at %s", WEBHOOK_PATH)

    async def stop(self) -> None:
        self._running = False
        await self._http.aclose()

    def healthy(self) -> bool:
        return self._running

    def routes(self) -> list[BaseRoute]:
        return [Route(WEBHOOK_PATH, self._endpoint, methods=["GET", "POST"], name="whatsapp-webhook")]

    # -- webhook ---------------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return self._verify(request)
        return await self._webhook(request)

    def _verify(self, request: Request) -> Response:
        """Meta's subscription check: echo the challenge when the verify token is ours."""
        query = request.query_params
        given = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            given.encode(), self._verify_token.encode()
        ):
            return Response(status_code=403)
        return PlainTextResponse(query.get("hub.challenge", ""))

    async def _webhook(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BODY:
            return Response(status_code=413)
        if not verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), self._secret):
            return Response(status_code=401)
        if not self._running:
            return Response(status_code=503)  # Meta delivers it again later
        try:
            data = json.loads(body)
        except ValueError:
            return Response(status_code=400)
        if not isinstance(data, dict):
            return Response(status_code=400)
        handled = True
        for value in _values(data):
            names = {
                str(contact.get("wa_id")): str((contact.get("profile") or {}).get("name") or "")
                for contact in value.get("contacts") or ()
                if isinstance(contact, dict)
            }
            for message in value.get("messages") or ():  # "statuses" (sent, delivered, read) are ignored
                if isinstance(message, dict) and not await self._message(message, names):
                    handled = False
        # confirmed only once every message's turn is stored: otherwise Meta delivers the batch again (the
        # messages already handled are then recognised by their id)
        return Response(status_code=200 if handled else 503)

    # -- messages --------------------------------------------------------------------------------------------

    async def _message(self, message: dict[str, Any], names: dict[str, str]) -> bool:
        """Handle one message; False when Meta must deliver it again."""
        wamid, wa_id, kind = str(message.get("id") or ""), str(message.get("from") or ""), message.get("type")
        if not wamid or not wa_id or kind in IGNORED or wamid in self._answered:
            return True
        content: dict[str, Any] = {}
        if kind == "text":
            content["text"] = str((message.get("text") or {}).get("body") or "")
        elif kind == "interactive":
            interactive = message.get("interactive") or {}
            reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
            content["payload"] = self.payload_of(str(reply.get("id") or "")) or STALE_PAYLOAD
        elif kind == "button":  # a template's quick reply: its text
            content["text"] = str((message.get("button") or {}).get("text") or "")
        elif kind in ("document", "image"):
            media = message.get(kind) or {}
            attachments, refusals = await self._attachment(wa_id, kind, media)
            if refusals:
                try:
                    await self._send_all(wa_id, [Reply(text) for text in refusals])
                except (WhatsAppError, httpx.HTTPError) as error:
                    return self._failed_to_send(error)
            if not attachments:
                self._answered.remember(wamid, None)
                return True  # the only file was refused: nothing for the engine to do
            content["attachments"] = tuple(attachments)
            content["text"] = str(media.get("caption") or "")
        inbound = Inbound(
            channel=CHANNEL,
            user_id=wa_id,
            delivery_id=wamid,
            display_name=names.get(wa_id) or None,
            **content,
        )
        try:
            result = await self.engine.turn(inbound)
        except NotStored as problem:
            await self._apologize(wa_id, problem.replies)
            return False
        try:
            await self._note_window(wa_id, message.get("timestamp"))
        except Exception as error:  # the turn is stored; the window is asked again with the redelivery
            logger.warning("whatsapp: window not recorded (%s)", type(error).__name__)
            return False
        try:
            await self._send_all(wa_id, result.replies)
        except (WhatsAppError, httpx.HTTPError) as error:
            return self._failed_to_send(error)
        self._answered.remember(wamid, None)
        return True

    @staticmethod
    def _failed_to_send(error: Exception) -> bool:
        """Whether the message counts as handled after its replies could not be sent: a refusal of the
        message itself (4xx) is final; a busy or failing WhatsApp (429, 5xx, the network) is tried again
        when Meta delivers the message again (its replies are kept with the delivery)."""
        status = error.status_code if isinstance(error, WhatsAppError) else None
        logger.warning("whatsapp: replies not sent (%s, %s)", type(error).__name__, status)
        return status is not None and status < 500 and status != 429

    async def _note_window(self, wa_id: str, timestamp: object) -> None:
        """Remember when the member wrote (the message's own time: Meta may deliver it late)."""
        now = self.engine.clock()
        try:
            at = min(datetime.fromtimestamp(int(str(timestamp)), UTC), now)
        except (TypeError, ValueError, OverflowError, OSError):
            at = now
        async with self.engine.database.begin() as connection:
            await repo.note_whatsapp_message(connection, wa_id=wa_id, at=at)

    async def _apologize(self, wa_id: str, replies: list[Reply]) -> None:
        """Say once in a while that the message waits for the database (each redelivery would repeat it)."""
        now = asyncio.get_running_loop().time()
        told = self._apologized.get(wa_id)
        if told is not None and now - told < APOLOGY_EVERY:
            return
        self._apologized.remember(wa_id, now)
        try:
            await self._send_all(wa_id, replies)
        except (WhatsAppError, httpx.HTTPError) as error:
            logger.warning("whatsapp: could not apologize: %s", type(error).__name__)

    async def _attachment(
        self, wa_id: str, kind: str, media: dict[str, Any]
    ) -> tuple[list[Attachment], list[str]]:
        """Download a document or an image through the media API (its URL, then the file with the token);
        the refusals are in the member's language."""
        media_id = str(media.get("id") or "")
        declared = str(media.get("mime_type") or "")
        if kind == "document":
            filename = documents.clean_filename(str(media.get("filename") or ""))
        else:
            extension = {"image/png": "png", "image/webp": "webp"}.get(declared.split(";")[0], "jpg")
            filename = f"photo-{media_id[-12:]}.{extension}"
        try:
            located = await self.client.get_media_url(media_id)
            if (located.file_size or 0) > documents.MAX_BYTES:
                return [], [await self._refusal(TOO_LARGE, wa_id, name=filename)]
            content = bytearray()
            async for chunk in self.client.stream_media(located.url):
                content += chunk
                if len(content) > documents.MAX_BYTES:
                    return [], [await self._refusal(TOO_LARGE, wa_id, name=filename)]
        except (WhatsAppError, httpx.HTTPError) as error:
            logger.warning("whatsapp: media download failed: %s", type(error).__name__)
            return [], [await self._refusal(DOWNLOAD_FAILED, wa_id, name=filename)]
        return [Attachment(filename, bytes(content), declared)], []

    async def _refusal(self, template: str, wa_id: str, **context: Any) -> str:
        lang = await self._language(wa_id)
        return self._render(template, lang, channel=template != TOO_LARGE, **context)

    async def _language(self, wa_id: str) -> str:
        """The conversation's language for what the channel says itself (WhatsApp tells none)."""
        chosen = await self.engine.conversation_language(CHANNEL, wa_id)
        return chosen or self.engine.profile.default_language

    def _render(self, template: str, lang: str, /, *, channel: bool = True, **context: Any) -> str:
        name = f"channels/whatsapp/{template}" if channel else template
        return render_for(self.engine.profile, name, lang, **context)

    # -- buttons ---------------------------------------------------------------------------------------------

    def choice_id(self, payload: str) -> str:
        """A button's or a row's id: the payload itself when it fits, else a short token."""
        if len(payload) <= ID_LIMIT and not payload.startswith(TOKEN_PREFIX):
            return payload
        token = TOKEN_PREFIX + hashlib.blake2b(payload.encode(), key=self._key, digest_size=16).hexdigest()
        self._payloads.remember(token, payload)
        return token

    def payload_of(self, choice_id: str) -> str | None:
        """The payload a pressed button stands for; None for a token this process no longer knows."""
        if choice_id.startswith(TOKEN_PREFIX):
            return self._payloads.get(choice_id)
        return choice_id or None

    def reply_buttons(self, choices: Sequence[Choice]) -> list[Button] | None:
        """Up to three choices as reply buttons; None when there are more, or when a label is too long for
        a button's title (a list row shows it whole, in its description)."""
        if len(choices) > BUTTONS_MAX or any(len(choice.label) > BUTTON_TITLE for choice in choices):
            return None
        if len({choice.label for choice in choices}) != len(choices):
            return None  # WhatsApp requires distinct titles
        return [Button(choice.label, self.choice_id(choice.payload)) for choice in choices]

    def lists(self, choices: Sequence[Choice], lang: str) -> list[SectionList]:
        """Choices as list messages of ten rows at most; a row's description keeps a label its title had
        to shorten."""
        label = shorten(self._render("choose", lang), LIST_BUTTON)
        lists = []
        for start in range(0, len(choices), ROWS_MAX):
            rows = [
                SectionRow(
                    title=shorten(choice.label, ROW_TITLE),
                    callback_data=self.choice_id(choice.payload),
                    description=(
                        shorten(choice.label, ROW_DESCRIPTION) if len(choice.label) > ROW_TITLE else None
                    ),
                )
                for choice in choices[start : start + ROWS_MAX]
            ]
            lists.append(SectionList(button_title=label, sections=[Section(title=label, rows=rows)]))
        return lists

    # -- sending ---------------------------------------------------------------------------------------------

    async def push(self, user_id: str, replies: list[Reply]) -> bool:
        """Send what staff said later (a reply, a decision): as it is within 24 hours of the member's last
        message, else as the approved template; False when it cannot go (no template configured)."""
        if not self._running or not user_id.isdigit():
            return False
        async with self.engine.database.connect() as connection:
            last = await repo.whatsapp_last_message(connection, wa_id=user_id)
        if last is not None and self.engine.clock() - last < WINDOW:
            try:
                await self._send_all(user_id, replies)
                return True
            except ReEngagementMessage:  # WhatsApp's clock says the window closed first: a template then
                logger.info("whatsapp: the window closed before the message went")
        if self.template is None:
            logger.info("whatsapp: the window is closed and no template is configured")
            return False
        lang = await self._language(user_id)
        code = TEMPLATE_LANGUAGES.get(lang, "en")
        for reply in replies:
            # a template's variable holds one paragraph: no line breaks, tabs or long runs of spaces
            text = " ".join(to_whatsapp(reply.text).split())
            parameter = {"type": "text", "text": shorten(text, TEMPLATE_PARAMETER)}
            await self.client.send_template(
                to=user_id,
                name=self.template,
                language=TemplateLanguage(code),
                params=[{"type": "body", "parameters": [parameter]}],
            )
        return True

    async def _send_all(self, wa_id: str, replies: Iterable[Reply]) -> None:
        lang: str | None = None
        for reply in replies:
            if reply.choices and lang is None:
                lang = await self._language(wa_id)
            await self._send(wa_id, reply, lang or self.engine.profile.default_language)

    async def _send(self, wa_id: str, reply: Reply, lang: str) -> None:
        """One reply as one or more messages; its choices as buttons or a list under the last one, its links
        as addresses in the text."""
        text = to_whatsapp(reply.text)
        if reply.links:
            text += "\n\n" + "\n".join(f"{link.label}: {link.url}" for link in reply.links)
        if not reply.choices:
            for chunk in split_text(text):
                await self.client.send_message(to=wa_id, text=chunk)
            return
        chunks = split_text(text)
        last = split_text(chunks.pop(), BODY_LIMIT)  # an interactive message's body is shorter
        chunks += last[:-1]
        for chunk in chunks:
            await self.client.send_message(to=wa_id, text=chunk)
        buttons = self.reply_buttons(reply.choices)
        if buttons is not None:
            await self.client.send_message(to=wa_id, text=last[-1], buttons=buttons)
            return
        for number, keyboard in enumerate(self.lists(reply.choices, lang)):
            await self.client.send_message(to=wa_id, text=last[-1] if number == 0 else "…", buttons=keyboard)


def _values(data: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The ``value`` of each change about messages in a webhook's body."""
    for entry in data.get("entry") or ():
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or ():
            if isinstance(change, dict) and change.get("field") == "messages":
                value = change.get("value")
                if isinstance(value, dict):
                    yield value
