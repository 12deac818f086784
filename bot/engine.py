"""The engine: one turn = an inbound message in, replies out.

It loads the conversation, serializes turns of the same conversation, ignores a delivery it has seen,
routes to the active flow or to intent detection, and saves state and transcript in the same transaction
as whatever the turn wrote. Channel-agnostic and async: channels build an ``Inbound`` and render replies.
What a turn records for staff (hand-offs, requests, messages for a hand-off's thread) reaches the
listeners after the commit, in the background and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import documents
from bot.config import Profile, Settings
from bot.flows import FLOWS, Flow
from bot.hours import SupportHours
from bot.i18n import resolve_locale
from bot.intents import Understander
from bot.knowledge import KnowledgeBase
from bot.language import detect_language, language_evidence
from bot.messages import Inbound, Reply, replies_from_json, replies_to_json
from bot.metrics import Metrics
from bot.registry import repo
from bot.registry.plain import TurnConnections
from bot.registry.session import unavailable
from bot.render import render_for
from bot.router import Router
from bot.turn import Turn
from bot.understanding.message import Message
from bot.understanding.store import ModelStore

logger = logging.getLogger(__name__)

MAX_TEXT = 4000  # longer messages are cut before matching and storing
RATE_WINDOW = timedelta(minutes=1)
MAX_TRACKED_USERS = 10_000
LOOKUP_TIMEOUT = 1.0  # seconds for a channel's side question (which language); without it, a default
RETRY_AFTER = 30.0  # seconds: when a channel should offer a message that could not be stored again
# The database (or the network to it) is away; programming errors are not caught here.
DATABASE_ERRORS = (OperationalError, InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What a turn gave: the replies, the conversation's language afterwards, and whether the message had
    been handled before (its first replies are given again: the member may never have seen them)."""

    replies: list[Reply]
    lang: str
    duplicate: bool = False
    files_kept: int = 0  # how many of the message's files a request kept


class NotStored(Exception):
    """The message could not be stored (the database is away or stalled). The channel must not confirm it
    to its platform, so that it is delivered again; ``replies`` is the apology to show meanwhile."""

    def __init__(self, replies: list[Reply], lang: str, retry_after: float = RETRY_AFTER) -> None:
        super().__init__("message not stored")
        self.replies, self.lang, self.retry_after = replies, lang, retry_after


def utcnow() -> datetime:
    return datetime.now(UTC)


def _pressed_caption(state: dict[str, Any], payload: str | None) -> str:
    """What the transcript keeps of a button press: the button's caption (what the member saw and chose),
    else the payload itself."""
    if not payload:
        return ""
    return next((label for label, shown, _ in state.get("shown", ()) if shown == payload), payload)


def _file_names(inbound: Inbound) -> str:
    """A document sent alone is kept in the transcript as its name, so the history shows it."""
    return " ".join(f"📎 {documents.clean_filename(file.filename)}" for file in inbound.attachments)


def _with_links(reply: Reply) -> str:
    """A reply as the transcript keeps it: its text, then its links (a reader of the history needs them)."""
    links = "\n".join(f"{link.label}: {link.url}" for link in reply.links)
    return f"{reply.text}\n\n{links}" if links else reply.text


class Engine:
    """Turns inbound messages into replies for one registry profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        profile: Profile,
        database: AsyncEngine,
        knowledge: KnowledgeBase,
        models: ModelStore,
        flows: dict[str, Flow] | None = None,
        clock: Callable[[], datetime] = utcnow,
        listeners: list[Callable[[str, int], Awaitable[None]]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.database = database
        self.turns = TurnConnections(database)  # each turn's transaction, on connections kept between turns
        self.knowledge = knowledge
        self.models = models  # read again at the start of a turn when a file changed
        self.flows = FLOWS if flows is None else flows
        self.clock = clock
        #: called with (event, row id) after a turn that wrote a request is committed (staff notifications)
        self.listeners = listeners if listeners is not None else []
        self.hours = SupportHours(profile)
        self.metrics = metrics
        self.router = Router(
            settings=settings,
            profile=profile,
            knowledge=knowledge,
            understander=Understander(knowledge, models),
            flows=self.flows,
            hours=self.hours,
        )
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        #: per chat user, the delivery ids of the last minute and when they came (a delivery again is not
        #: counted twice: a platform offering a message again after an outage is no flood)
        self._recent: dict[tuple[str, str], OrderedDict[str, datetime]] = {}
        self._events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()  # for the listeners, in order
        self._notifier: asyncio.Task[None] | None = None

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Handle one message and return its replies (see ``turn``)."""
        return (await self.turn(inbound)).replies

    async def turn(self, inbound: Inbound) -> TurnResult:
        """Handle one message. A delivery id seen before changes nothing and gets its first replies again.

        A flood from one chat user, or from one client address, gets one polite answer and the rest is
        dropped. When the database is away or the turn cannot finish within ``turn_timeout``, nothing is
        written and ``NotStored`` carries an apology with the help desk's phone number: the channel asks its
        platform (or the page) to deliver the message again.
        """
        inbound = inbound.storable()
        try:
            async with asyncio.timeout(self.settings.turn_timeout):
                pace = self._pace(inbound)
                if pace != "ok":
                    return self._rate_limited(inbound, pace)
                return await self._serialized(inbound)
        except Exception as error:
            if not unavailable(error):
                raise
            logger.warning(
                "database unavailable (%s); the message is to be delivered again", type(error).__name__
            )
            self._count(inbound.channel, "database_down", 0.0)
            if self.metrics is not None:
                self.metrics.errors.labels(kind="database").inc()
            lang = self._early_language(inbound)
            raise NotStored([Reply(self._render_early(lang, "database_down"))], lang) from None

    async def conversation_language(self, channel: str, user_id: str) -> str | None:
        """The language of this chat user's conversation, for what a channel says on its own (a refused
        file, an error); None when there is none yet or the database cannot say."""
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT), self.database.connect() as connection:
                return await repo.conversation_language(connection, channel=channel, user_id=user_id)
        except (*DATABASE_ERRORS, SQLAlchemyError):  # also a pool that has no connection to spare
            return None

    async def _serialized(self, inbound: Inbound) -> TurnResult:
        key = (inbound.channel, inbound.user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._handle(inbound)

    def _pace(self, inbound: Inbound) -> str:
        """``ok``; ``warn`` for the first message over the per-minute limit; ``drop`` for the rest."""
        limit = self.settings.rate_limit_per_minute
        if limit <= 0:
            return "ok"
        now = self.clock()
        if len(self._recent) > MAX_TRACKED_USERS:  # forget quiet users
            self._recent = {
                k: v for k, v in self._recent.items() if v and now - next(reversed(v.values())) < RATE_WINDOW
            }
        sent = self._recent.setdefault((inbound.channel, inbound.user_id), OrderedDict())
        while sent and now - next(iter(sent.values())) >= RATE_WINDOW:
            sent.popitem(last=False)
        if inbound.delivery_id in sent:
            return "ok"
        sent[inbound.delivery_id] = now
        if len(sent) <= limit:
            return "ok"
        return "warn" if len(sent) == limit + 1 else "drop"

    def _client_pace(self, hits: int) -> str:
        """Like ``_pace``, for every chat from one client address together, from the count of its messages
        this minute (kept in the database, so that every process counts in the same row)."""
        limit = self.settings.client_rate_limit_per_minute
        if hits <= limit:
            return "ok"
        return "warn" if hits == limit + 1 else "drop"

    def _rate_limited(self, inbound: Inbound, pace: str) -> TurnResult:
        """One polite answer for the first message over a limit (``warn``), none after (``drop``)."""
        self._count(inbound.channel, "rate_limited", 0.0)
        lang = self._early_language(inbound)
        return TurnResult([Reply(self._render_early(lang, "rate_limited"))] if pace == "warn" else [], lang)

    def _early_language(self, inbound: Inbound) -> str:
        """The best language known before the conversation is loaded."""
        return (
            detect_language(inbound.text, self.knowledge)  # the words themselves, else the platform's hint
            or resolve_locale(inbound.language_hint)
            or self.profile.default_language
        )

    def _render_early(self, lang: str, template: str) -> str:
        """A reply given before the conversation is loaded."""
        return render_for(self.profile, template, lang)

    async def close(self) -> None:
        """Stop telling listeners (``settle`` first to let them hear what is queued; what is left is posted
        by the next process, see the Slack channel's catch-up)."""
        if self._events.qsize():
            logger.warning("%d notifications for staff dropped at shutdown", self._events.qsize())
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
        await self.turns.close()

    def _count(self, channel: str, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.turn(channel, outcome, seconds)

    async def _handle(self, inbound: Inbound) -> TurnResult:
        started = time.perf_counter()
        self.models.refresh()  # a model trained or rolled back since the last turn answers from this one on
        now = self.clock()
        text = inbound.text[:MAX_TEXT]
        # one transaction on one connection; flows that need Core or the ORM get them in the same transaction
        async with self.turns.transaction(self.database) as transaction:
            books = transaction.books
            if inbound.client and self.settings.client_rate_limit_per_minute > 0:
                # counted on the turn's connection and committed at once: the count stands whatever the
                # turn does, and turns from the same address do not wait for each other's row lock
                hits = await books.count_hit(
                    kind="messages", value=inbound.client, window=RATE_WINDOW, now=now
                )
                await transaction.commit()
                pace = self._client_pace(hits)
                if pace != "ok":
                    return self._rate_limited(inbound, pace)
            delivery = {"channel": inbound.channel, "delivery_id": inbound.delivery_id}
            if not await books.claim_delivery(**delivery, now=now):
                logger.info("duplicate delivery: its replies given again", extra={"channel": inbound.channel})
                self._count(inbound.channel, "duplicate", time.perf_counter() - started)
                kept = await repo.stored_replies(transaction.connection, **delivery)
                lang = await repo.conversation_language(
                    transaction.connection, channel=inbound.channel, user_id=inbound.user_id
                )
                return TurnResult(
                    replies_from_json(kept) if kept else [], lang or self.profile.default_language, True
                )
            initial = resolve_locale(inbound.language_hint) or self.profile.default_language
            conversation, member = await books.load_conversation(
                channel=inbound.channel,
                user_id=inbound.user_id,
                registry=self.profile.key,
                language=initial,
                now=now,
            )
            state = conversation.state  # read afresh for this turn: changing it in place is safe
            turn = Turn(
                inbound=inbound,
                profile=self.profile,
                now=now,
                lang=state.get("lang") or initial,
                lang_explicit=bool(state.get("lang_explicit")),
                transaction=transaction,
                conversation_id=conversation.id,
                member=member,
                answer=text.strip(),
                hours=self.hours,
                memory=state.setdefault("memory", {}),
            )
            written_in, lead = language_evidence(text, self.knowledge) if text else (None, 0)
            # a conversation under way changes language on clear evidence only ("ok", "1", a code: never)
            needed = 2 if state.get("greeted") else 1
            command = text.lstrip().startswith("/")
            if written_in and lead >= needed and not turn.lang_explicit and not command:
                turn.set_language(written_in, explicit=False)
            said = text or _pressed_caption(state, inbound.payload) or _file_names(inbound)
            transcript: list[tuple[str, str]] = [("in", said)]
            if await self._with_staff(turn, inbound):
                # a person has this conversation: the member's words go to them, and the assistant is quiet
                entry_id = await repo.add_transcript_entry(
                    transaction.connection,
                    conversation_id=conversation.id,
                    direction="in",
                    text=said,
                    now=now,
                )
                transcript.clear()
                turn.events.append(("member_message", entry_id))
                turn.outcome = "to_staff"
                replies = []
            else:
                try:
                    # the message is read in its own language (a Spanish question in an English chat)
                    message = Message.of(text, written_in or turn.lang)
                    replies = await self.router.route(turn, state, message)
                except BaseException:  # the transaction rolls back; the session a flow opened goes too
                    with contextlib.suppress(Exception):
                        await turn.close()
                    raise
            if not state.get("greeted"):
                state["greeted"] = True
                notice = self.profile.notice_for(turn.lang)
                if notice:
                    replies.insert(0, Reply(turn.render("notice", notice=notice)))
            Router.shown(state, replies)
            state["lang"], state["lang_explicit"] = turn.lang, turn.lang_explicit
            transcript.extend(("out", _with_links(reply)) for reply in replies)
            await turn.flush()
            await books.keep_replies(**delivery, replies=replies_to_json(replies))
            await books.add_transcript(conversation_id=conversation.id, entries=transcript, now=now)
            await books.save_conversation(conversation.id, state=state, language=turn.lang, now=now)
        seconds = time.perf_counter() - started
        self._count(inbound.channel, turn.outcome, seconds)
        if logger.isEnabledFor(logging.INFO):  # every turn passes here: build the record only when wanted
            logger.info(
                "turn handled",
                extra={
                    "conversation_id": turn.conversation_id,
                    "channel": inbound.channel,
                    "outcome": turn.outcome,
                    "ms": round(seconds * 1000, 2),
                },
            )
        self._notify(turn.events)
        return TurnResult(replies, turn.lang, files_kept=turn.files_kept)

    # -- telling staff ------------------------------------------------------------------------------------

    def _notify(self, events: list[tuple[str, int]]) -> None:
        """Queue what the turn recorded for the listeners. The member's reply does not wait for Slack (a
        rate limit there can mean a pause of many seconds); one worker keeps the events in order, so a
        hand-off's card is posted before the messages that go in its thread."""
        if not events or not self.listeners:
            return
        if self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._tell_listeners(), name="engine-notifications")
        for event in events:
            self._events.put_nowait(event)

    async def _tell_listeners(self) -> None:
        while True:
            event, row_id = await self._events.get()
            try:
                for listener in self.listeners:
                    try:
                        await listener(event, row_id)
                    except Exception:  # a notification failing must not stop the ones after it
                        logger.exception("listener failed for %s", event)
            finally:
                self._events.task_done()

    async def settle(self, timeout: float | None = None) -> bool:
        """Wait until the listeners have heard every event so far; False if ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._events.join(), timeout)
        except TimeoutError:
            return False
        return True

    # -- routing ------------------------------------------------------------------------------------------

    async def _with_staff(self, turn: Turn, inbound: Inbound) -> bool:
        """Whether a help desk person is handling this conversation live (Slack on, escalation open)."""
        escalation_id = turn.memory.get("escalation")
        if escalation_id is None:
            return False
        if await repo.escalation_is_open(turn.connection, int(escalation_id)):
            return self.settings.slack_enabled and not (inbound.payload or "").startswith("rate:")
        turn.memory.pop("escalation", None)
        return False
