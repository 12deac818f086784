"""The SMS channel: Twilio's webhook in, the engine's replies out through Twilio's Messages API.

Twilio posts each text (and MMS) to ``/sms/webhook``, signed with the account's auth token. The message is
answered with empty TwiML once its turn is stored, and with a 503 otherwise, so that Twilio delivers it
again. Replies go out through the REST API, not as TwiML, so that a help desk answer or a decision reaches
the member later too (``push``). A phone number is where to answer, never a proof of who writes: the
engine's link flow (Registry ID, e-mail, code) is the proof.

Text messages are short and paid by the segment: buttons become numbered lines (a typed number presses
them), Markdown becomes plain text, and a reply longer than ``MAX_SEGMENTS`` segments is shortened to its
summary and its link. Carrier keywords (STOP, START, HELP and their Spanish forms) are honoured here: a
number that texted STOP gets nothing at all until it texts START, and that is kept in the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import mimetypes
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]
from twilio.http import AsyncHttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response as TwilioResponse  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from bot import documents
from bot.channels.memory import Forget
from bot.channels.plain import format_reply, plain_text
from bot.config import Settings
from bot.engine import DATABASE_ERRORS, LOOKUP_TIMEOUT, Engine, NotStored
from bot.messages import Attachment, Inbound, Reply
from bot.registry import repo
from bot.render import render_for

logger = logging.getLogger(__name__)

CHANNEL = "sms"
WEBHOOK_PATH = "/sms/webhook"
SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_WEBHOOK_BODY = 64 * 1024  # Twilio's form is a few hundred bytes (media come as URLs)
MAX_MEDIA = 10  # Twilio's limit of media in one MMS
MAX_SEGMENTS = 3  # a reply is shortened to fit this many segments
APOLOGY_EVERY = 600.0  # seconds: a number whose message waits for the database hears why once in this time
REMEMBERED = 10_000  # bounded memories: message SIDs handled, apologies given
UNSUBSCRIBED = 21610  # Twilio's error code: the number has opted out at Twilio (STOP)
TOO_LARGE = "flows/documents/too_large"  # the engine's own wording for a file over the limit

# Carrier keywords: the whole message, any case. The language is that of the word.
STOP_WORDS = {
    "stop": "en",
    "stopall": "en",
    "unsubscribe": "en",
    "cancel": "en",
    "end": "en",
    "quit": "en",
    "alto": "es",
    "parar": "es",
}
START_WORDS = {"start": "en", "unstop": "en", "yes": "en"}
HELP_WORDS = {"help": "en", "ayuda": "es"}

# -- counting segments ---------------------------------------------------------------------------------------

# GSM 03.38: the basic alphabet (one septet each) and the extension table (an escape and a septet: two).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("\f^{}\\[~]|€")
GSM_SINGLE, GSM_PART = 160, 153  # septets in a lone message, in each part of a concatenated one
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units, likewise


def is_gsm(text: str) -> bool:
    """Whether ``text`` can be sent in the GSM-7 alphabet (else the whole message is UCS-2)."""
    return all(char in GSM_BASIC or char in GSM_EXTENDED for char in text)


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes: GSM-7 when every character is in the GSM alphabet (160 alone,
    153 per part, an extension character counting two), UCS-2 otherwise (70 alone, 67 per part, a
    character outside the BMP counting two). A part never splits an escape or a surrogate pair."""
    if not text:
        return 0
    if is_gsm(text):
        units = [2 if char in GSM_EXTENDED else 1 for char in text]
        single, part = GSM_SINGLE, GSM_PART
    else:
        units = [len(char.encode("utf-16-le")) // 2 for char in text]
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for unit in units:
        if used + unit > part:
            count, used = count + 1, 0
        used += unit
    return count


def _is_title(paragraph: str) -> bool:
    """A heading line (an article's bold title): one short line without closing punctuation."""
    return (
        "\n" not in paragraph
        and len(paragraph) <= 80
        and not paragraph.endswith((".", "。", ":", "：", "?", "？"))
    )


def shorten(
    reply_text: str, links: Sequence[str], max_segments: int = MAX_SEGMENTS, *, choices: Sequence[str] = ()
) -> str:
    """A reply as one text message of at most ``max_segments`` segments: the whole text when it fits, else
    its summary (the title and first paragraph, cut at a word if need be) and the closing question that
    the choices answer, followed by every numbered choice and the links (URLs).

    Choices are never dropped (the member answers them by number), so a reply whose choices alone are
    longer than the limit is longer than the limit too.
    """
    tail = [*choices, *links]

    def compose(body: str) -> str:
        return "\n".join([body, *tail] if body else tail)

    whole = compose(reply_text.strip())
    if segments(whole) <= max_segments:
        return whole
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", reply_text.strip()) if part.strip()]
    summary = paragraphs[0] if paragraphs else ""
    rest = paragraphs[1:]
    if rest and _is_title(summary):
        summary, rest = f"{summary}\n{rest[0]}", rest[1:]
    question = rest[-1] if choices and rest and rest[-1].endswith(("?", "？")) else ""
    for closing in (question, ""):
        ending = f"\n\n{closing}" if closing else ""
        if segments(compose(summary + ending)) <= max_segments:
            return compose(summary + ending)
        ellipsis = "..." if is_gsm(summary) else "…"
        low, high = 0, len(summary)  # the longest prefix of the summary that fits, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            if segments(compose(_cut(summary, middle) + ellipsis + ending)) <= max_segments:
                low = middle
            else:
                high = middle - 1
        if low:
            return compose(_cut(summary, low) + ellipsis + ending)
    return compose("")


def _cut(text: str, length: int) -> str:
    """The first ``length`` characters of ``text``, back to the last space when one is near."""
    cut = text[:length]
    if length < len(text) and " " in cut[-20:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip()


def keyword(text: str) -> str:
    """The message as a possible carrier keyword: trimmed, lower case, without surrounding punctuation."""
    return text.strip().strip(".!¡¿?").strip().casefold()


def sms_text(reply: Reply, *, numbered_from: int = 1, max_segments: int = MAX_SEGMENTS) -> str:
    """A reply as a text message: plain text, numbered choices ("1. Yes, start now"), links as URLs;
    shortened when it would take more than ``max_segments`` segments."""
    # a pictograph in a label ("👍 Helpful") would make the whole message UCS-2: a third of the room
    reply = dataclasses.replace(
        reply,
        choices=tuple(dataclasses.replace(c, label=_without_pictographs(c.label)) for c in reply.choices),
    )
    whole = format_reply(
        reply, numbered_from=numbered_from, choice_line="{number}. {label}", link_line="{label}: {url}"
    )
    whole = "\n".join(_plain_url(line) for line in whole.split("\n"))
    if segments(whole) <= max_segments:
        return whole
    choices = [f"{number}. {c.label}" for number, c in enumerate(reply.choices, start=numbered_from)]
    urls = [_plain_url(link.url) for link in reply.links]
    return shorten(plain_text(reply.text), urls, max_segments, choices=choices)


def _without_pictographs(label: str) -> str:
    """A button's label without its emoji (symbols outside every alphabet), or as it is if that is all."""
    kept = "".join(char for char in label if unicodedata.category(char) != "So" and char != "\ufe0f").strip()
    return kept or label


def _plain_url(url: str) -> str:
    """A link as a phone shows it: an e-mail address or phone number without its scheme."""
    return re.sub(r"\b(mailto|tel):", "", url)


class _AiohttpClient(AsyncHttpClient):  # type: ignore[misc]
    """Twilio's HTTP client interface on one aiohttp session, with the basic auth as a header (the bundled
    client uses ``aiohttp.BasicAuth``, deprecated in aiohttp 3.14)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(logger, True, None)
        self.session = session

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with self.session.request(
            method.upper(),
            url,
            params=cast(Any, params),
            data=data,
            headers=headers,
            allow_redirects=allow_redirects,
        ) as response:
            return TwilioResponse(response.status, await response.text(), response.headers)


T = TypeVar("T")


# -- the channel ---------------------------------------------------------------------------------------------


class SmsChannel:
    """Members text the registry's number; Twilio brings their messages to ``/sms/webhook``."""

    name = CHANNEL

    def __init__(self, engine: Engine, settings: Settings) -> None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from):
            raise ValueError("REGISTRY_BOT_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM must be set")
        self.engine = engine
        self.account_sid = settings.twilio_account_sid
        self._token = settings.twilio_auth_token.get_secret_value()
        self.sender = settings.twilio_from
        self.api_url = settings.twilio_api_url.rstrip("/")
        self.public_url = settings.public_url.rstrip("/") if settings.public_url else None
        self._validator = RequestValidator(self._token)
        self._client: Any = None  # twilio.rest.Client, built in start() (its HTTP session needs the loop)
        self._media: aiohttp.ClientSession | None = None
        self._handled: Forget[str, None] = Forget(REMEMBERED)  # message SIDs answered by this process
        self._apologized: Forget[str, float] = Forget(REMEMBERED)
        self._stopped: set[str] = set()  # numbers this process saw opt out, for when the database is away
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._media = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._client = Client(self.account_sid, self._token, http_client=_AiohttpClient(self._media))
        self._client.api.base_url = self.api_url  # another API host: a test server, a proxy
        self._running = True

    async def stop(self) -> None:
        self._running = False
        if self._media is not None:
            await self._media.close()

    def healthy(self) -> bool:
        return self._running

    def routes(self) -> list[BaseRoute]:
        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"], name="sms-webhook")]

    # -- webhook ---------------------------------------------------------------------------------------------

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: the public address when a proxy stands in front, else the request's."""
        if self.public_url is None:
            return str(request.url)
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{self.public_url}{request.url.path}{query}"

    async def _webhook(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BODY:
            return Response(status_code=413)
        form = await request.form()
        params = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or not self._validator.validate(self.signed_url(request), params, signature):
            return Response(status_code=403)
        if not self._running:
            return Response(status_code=503)
        number, sid = params.get("From", ""), params.get("MessageSid") or params.get("SmsSid", "")
        if not number or not sid:
            return Response(status_code=400)
        if not await self._receive(number, sid, params):
            return Response(status_code=503)  # Twilio delivers it again
        return Response(EMPTY_TWIML, media_type="application/xml")

    async def _receive(self, number: str, sid: str, params: dict[str, str]) -> bool:
        """Handle one message; False when Twilio must deliver it again (not stored, or replies not sent)."""
        if sid in self._handled:
            return True
        text = params.get("Body", "")
        word = keyword(text)
        try:
            if word in STOP_WORDS:
                await self._opt(number, out=True)
                return self._done(sid)  # Twilio confirms the opt-out to the member itself
            opted_out = await self._in_database(lambda db: repo.sms_opted_out(db, number=number))
            if opted_out and word in START_WORDS:
                await self._opt(number, out=False)
                await self._send(number, Reply(self._render("resumed", START_WORDS[word])))
                return self._done(sid)
        except (*DATABASE_ERRORS, SQLAlchemyError) as error:
            logger.warning("sms: opt-outs unreadable (%s)", type(error).__name__)
            if word in STOP_WORDS or word in START_WORDS or number in self._stopped:
                return False
            opted_out = False  # the engine will not store the message either: the apology says so
        except TwilioException as error:
            logger.warning("sms: reply not sent (%s)", type(error).__name__)
            return False
        if opted_out:
            return self._done(sid)  # nothing is sent until START
        try:
            if word in HELP_WORDS:
                await self._send(number, Reply(self._render("help", HELP_WORDS[word])))
                return self._done(sid)
            return await self._turn(number, sid, text, params)
        except TwilioException as error:
            logger.warning("sms: replies not sent (%s); the message will come again", type(error).__name__)
            return False

    def _done(self, sid: str) -> bool:
        self._handled.remember(sid, None)
        return True

    async def _turn(self, number: str, sid: str, text: str, params: dict[str, str]) -> bool:
        attachments, refusals = await self._attachments(number, sid, params)
        for refusal in refusals:
            await self._send(number, Reply(refusal))
        if refusals and not attachments and not text.strip():
            return self._done(sid)
        inbound = Inbound(
            channel=CHANNEL, user_id=number, delivery_id=sid, text=text, attachments=tuple(attachments)
        )
        try:
            result = await self.engine.turn(inbound)
        except NotStored as problem:
            await self._apologize(number, problem.replies)
            return False
        await self._send_all(number, result.replies)
        return self._done(sid)

    async def _apologize(self, number: str, replies: list[Reply]) -> None:
        """Say once in a while that the message waits for the database (each redelivery would repeat it)."""
        now = asyncio.get_running_loop().time()
        told = self._apologized.get(number)
        if told is not None and now - told < APOLOGY_EVERY:
            return
        self._apologized.remember(number, now)
        try:
            await self._send_all(number, replies)
        except TwilioException as error:
            logger.warning("sms: could not apologize: %s", type(error).__name__)

    # -- opt-outs --------------------------------------------------------------------------------------------

    async def _in_database(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with asyncio.timeout(LOOKUP_TIMEOUT), self.engine.database.begin() as connection:
            return await work(connection)

    async def _opt(self, number: str, *, out: bool) -> None:
        now = self.engine.clock()
        await self._in_database(lambda db: repo.set_sms_opt_out(db, number=number, opted_out=out, now=now))
        if out:
            self._stopped.add(number)
        else:
            self._stopped.discard(number)

    async def opted_out(self, number: str) -> bool:
        """Whether nothing may be sent to ``number``; when the database cannot say, what this process saw,
        and unknown numbers count as opted out (sending to one that texted STOP is worse than waiting)."""
        try:
            return await self._in_database(lambda db: repo.sms_opted_out(db, number=number))
        except (*DATABASE_ERRORS, SQLAlchemyError) as error:
            logger.warning("sms: opt-outs unreadable (%s)", type(error).__name__)
            return True

    # -- media -----------------------------------------------------------------------------------------------

    async def _attachments(
        self, number: str, sid: str, params: dict[str, str]
    ) -> tuple[list[Attachment], list[str]]:
        """Download the MMS's media from Twilio (its URLs need the account's credentials); files over the
        size limit, or that cannot be fetched, are refused in the member's language."""
        try:
            count = min(int(params.get("NumMedia") or 0), MAX_MEDIA)
        except ValueError:
            count = 0
        attachments: list[Attachment] = []
        refusals: list[str] = []
        langs: list[str] = []

        async def refuse(template: str, **context: Any) -> None:
            if not langs:
                chosen = await self.engine.conversation_language(CHANNEL, number)
                langs.append(chosen or self.engine.profile.default_language)
            refusals.append(self._render(template, langs[0], **context))

        for index in range(count):
            url = params.get(f"MediaUrl{index}", "")
            declared = params.get(f"MediaContentType{index}", "")
            extension = mimetypes.guess_extension(declared.split(";")[0].strip()) or ""
            filename = documents.clean_filename(f"mms-{sid[-8:]}-{index + 1}{extension}")
            try:
                content = await self._download(url)
            except aiohttp.ClientError as error:
                logger.warning("sms: media download failed: %s", type(error).__name__)
                await refuse("download_failed")
                continue
            if content is None:
                await refuse(TOO_LARGE, name=filename)
                continue
            attachments.append(Attachment(filename, content, declared))
        return attachments, refusals

    async def _download(self, url: str) -> bytes | None:
        """The medium's bytes, or None when it is larger than ``documents.MAX_BYTES`` (not read further).

        Only URLs on the Twilio API host get the account's credentials; any other is refused.
        """
        assert self._media is not None
        if urlsplit(url)[:2] != urlsplit(self.api_url)[:2]:
            raise aiohttp.InvalidURL(url)
        auth = {"Authorization": aiohttp.encode_basic_auth(self.account_sid, self._token)}
        async with self._media.get(url, headers=auth) as response:
            response.raise_for_status()
            if (response.content_length or 0) > documents.MAX_BYTES:
                return None
            content = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                content += chunk
                if len(content) > documents.MAX_BYTES:
                    return None
        return bytes(content)

    # -- sending ---------------------------------------------------------------------------------------------

    async def push(self, user_id: str, replies: list[Reply]) -> bool:
        """Send replies nobody asked for this turn (a help desk answer, a decision); False when the number
        opted out (or that cannot be checked) or Twilio would not take them."""
        if not self._running or not re.fullmatch(r"\+[1-9]\d{6,14}", user_id):
            return False
        if await self.opted_out(user_id):
            return False
        try:
            await self._send_all(user_id, replies)
        except TwilioException as error:
            logger.warning("sms: push not sent (%s)", type(error).__name__)
            return False
        return True

    async def _send_all(self, number: str, replies: list[Reply]) -> None:
        """The replies of one turn, one text message each; choices numbered on from one reply to the next
        (as the engine counts them when a number is typed)."""
        numbered_from = 1
        for reply in replies:
            await self._send(number, reply, numbered_from=numbered_from)
            numbered_from += len(reply.choices)

    async def _send(self, number: str, reply: Reply, *, numbered_from: int = 1) -> None:
        sender = (
            {"messaging_service_sid": self.sender} if self.sender.startswith("MG") else {"from_": self.sender}
        )
        try:
            await self._client.messages.create_async(
                to=number, body=sms_text(reply, numbered_from=numbered_from), **sender
            )
        except TwilioRestException as error:
            if error.code == UNSUBSCRIBED:  # opted out at Twilio without us hearing of it
                logger.info("sms: the number has opted out at Twilio")
                self._stopped.add(number)
                return
            raise

    def _render(self, template: str, lang: str, /, **context: Any) -> str:
        name = template if "/" in template else f"channels/sms/{template}"
        return render_for(self.engine.profile, name, lang, **context)
