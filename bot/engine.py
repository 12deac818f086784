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
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Profile, Settings
from bot.flows import FLOWS, Done, Flow, FlowState, Reask, Stay
from bot.hours import SupportHours
from bot.i18n import N_, resolve_locale
from bot.intents import Understander, Understanding
from bot.knowledge import Article, KnowledgeBase
from bot.language import detect_language
from bot.messages import Choice, Inbound, Link, Reply
from bot.metrics import Metrics
from bot.registry import repo
from bot.render import render
from bot.turn import Turn

logger = logging.getLogger(__name__)

# Menu of what the assistant does, offered on "help" and when it did not understand.
MENU_TOPICS = ("find-registry-id", "withdraw-training", "audit-request", "appeal", "forgot-password")
MAX_TEXT = 4000  # longer messages are cut before matching and storing
RATE_WINDOW = timedelta(minutes=1)
MAX_TRACKED_USERS = 10_000
MAX_WAITING = 1_000  # messages kept while the database is away
LOOKUP_TIMEOUT = 1.0  # seconds for a channel's side question (which language); without it, a default
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # seconds between retries while the database is away
# The database (or the network to it) is away; programming errors are not caught here.
DATABASE_ERRORS = (OperationalError, InterfaceError, OSError, TimeoutError)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Turns inbound messages into replies for one registry profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        profile: Profile,
        database: AsyncEngine,
        knowledge: KnowledgeBase,
        flows: dict[str, Flow] | None = None,
        clock: Callable[[], datetime] = utcnow,
        listeners: list[Callable[[str, int], Awaitable[None]]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.database = database
        self.knowledge = knowledge
        self.flows = FLOWS if flows is None else flows
        self.clock = clock
        #: called with (event, row id) after a turn that wrote a request is committed (staff notifications)
        self.listeners = listeners if listeners is not None else []
        self.hours = SupportHours(profile)
        self.metrics = metrics
        self.understander = Understander(
            knowledge,
            answer_threshold=settings.answer_threshold,
            clarify_threshold=settings.clarify_threshold,
        )
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        #: delivers replies outside a turn: (channel, chat user id, replies); set by ``serve``
        self.deliver_later: Callable[[str, str, list[Reply]], Awaitable[bool]] | None = None
        self._recent: dict[tuple[str, str], deque[datetime]] = {}
        self._waiting: deque[Inbound] = deque(maxlen=MAX_WAITING)
        self._retrying: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()  # for the listeners, in order
        self._notifier: asyncio.Task[None] | None = None
        self._answers: dict[tuple[str, str, str], Reply] = {}  # (article, its language, member's language)

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Handle one message; a delivery id seen before returns no replies and changes nothing.

        A flood from one chat user gets one polite answer and the rest is dropped. When the database is
        unreachable the member gets an apology with the help desk's phone number, and the message is kept
        and handled once the database is back (its replies then go out through ``deliver_later``).
        """
        pace = self._pace(inbound)
        if pace != "ok":
            self._count(inbound.channel, "rate_limited", 0.0)
            return [Reply(self._render_early(inbound, "rate_limited"))] if pace == "warn" else []
        try:
            return await self._serialized(inbound)
        except DATABASE_ERRORS as error:
            logger.warning("database unavailable (%s); message kept for a retry", type(error).__name__)
            self._count(inbound.channel, "database_down", 0.0)
            if self.metrics is not None:
                self.metrics.errors.labels(kind="database").inc()
            self._waiting.append(inbound)
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.create_task(self._retry_waiting())
            return [Reply(self._render_early(inbound, "database_down"))]

    async def conversation_language(self, channel: str, user_id: str) -> str | None:
        """The language of this chat user's conversation, for what a channel says on its own (a refused
        file, an error); None when there is none yet or the database cannot say."""
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT), self.database.connect() as connection:
                return await repo.conversation_language(connection, channel=channel, user_id=user_id)
        except (*DATABASE_ERRORS, SQLAlchemyError):  # also a pool that has no connection to spare
            return None

    async def _serialized(self, inbound: Inbound) -> list[Reply]:
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
            self._recent = {k: v for k, v in self._recent.items() if v and now - v[-1] < RATE_WINDOW}
        sent = self._recent.setdefault((inbound.channel, inbound.user_id), deque())
        while sent and now - sent[0] >= RATE_WINDOW:
            sent.popleft()
        sent.append(now)
        if len(sent) <= limit:
            return "ok"
        return "warn" if len(sent) == limit + 1 else "drop"

    def _render_early(self, inbound: Inbound, template: str) -> str:
        """A reply given before the conversation is loaded: in the best language known without it."""
        lang = (
            resolve_locale(inbound.language_hint)
            or detect_language(inbound.text, self.knowledge)
            or self.profile.default_language
        )
        return render(
            template,
            lang,
            tz=self.profile.timezone,
            profile=self.profile,
            registry_name=self.profile.display_name(lang),
        )

    async def _retry_waiting(self) -> None:
        """Handle the messages kept while the database was away, oldest first, backing off meanwhile."""
        delay = RETRY_FIRST
        while self._waiting:
            await asyncio.sleep(delay)
            inbound = self._waiting[0]
            try:
                replies = await self._serialized(inbound)
            except DATABASE_ERRORS:
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._waiting.popleft()
            delay = RETRY_FIRST
            if replies and self.deliver_later is not None:
                try:
                    await self.deliver_later(inbound.channel, inbound.user_id, replies)
                except Exception:  # the replies are in the transcript; the member sees them on return
                    logger.exception("could not deliver the replies of a retried message")

    async def close(self) -> None:
        """Stop retrying (messages still waiting are redelivered by the platforms or asked again) and
        stop telling listeners (``settle`` first to let them hear what is queued)."""
        if self._events.qsize():
            logger.warning("%d notifications for staff dropped at shutdown", self._events.qsize())
        for task in (self._retrying, self._notifier):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _count(self, channel: str, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.turn(channel, outcome, seconds)

    async def _handle(self, inbound: Inbound) -> list[Reply]:
        started = time.perf_counter()
        now = self.clock()
        text = inbound.text[:MAX_TEXT]
        # Core statements on one connection; flows that need the ORM get a session in the same transaction
        async with self.database.begin() as connection:
            if not await repo.claim_delivery(
                connection, channel=inbound.channel, delivery_id=inbound.delivery_id, now=now
            ):
                logger.info("duplicate delivery ignored", extra={"channel": inbound.channel})
                self._count(inbound.channel, "duplicate", time.perf_counter() - started)
                return []
            initial = resolve_locale(inbound.language_hint) or self.profile.default_language
            conversation, member = await repo.load_conversation(
                connection,
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
                connection=connection,
                conversation_id=conversation.id,
                member=member,
                answer=text.strip(),
                hours=self.hours,
                memory=state.setdefault("memory", {}),
            )
            if text and not turn.lang_explicit and not text.lstrip().startswith("/"):
                detected = detect_language(text, self.knowledge)
                if detected:
                    turn.set_language(detected, explicit=False)
            said = text or (inbound.payload or "")
            transcript: list[tuple[str, str]] = [("in", said)]
            if await self._with_staff(turn, inbound):
                # a person has this conversation: the member's words go to them, and the assistant is quiet
                entry_id = await repo.add_transcript_entry(
                    connection, conversation_id=conversation.id, direction="in", text=said, now=now
                )
                transcript.clear()
                turn.events.append(("member_message", entry_id))
                turn.outcome = "to_staff"
                replies = []
            else:
                try:
                    replies = await self._route(turn, state, text)
                except BaseException:  # the transaction rolls back; the session a flow opened goes too
                    with contextlib.suppress(Exception):
                        await turn.close()
                    raise
            if not state.get("greeted"):
                state["greeted"] = True
                notice = self.profile.notice_for(turn.lang)
                if notice:
                    replies.insert(0, Reply(turn.render("notice", notice=notice)))
            state["lang"], state["lang_explicit"] = turn.lang, turn.lang_explicit
            transcript.extend(("out", reply.text) for reply in replies)
            await turn.flush()
            await repo.add_transcript(
                connection, conversation_id=conversation.id, entries=transcript, now=now
            )
            await repo.save_conversation(
                connection, conversation.id, state=state, language=turn.lang, now=now
            )
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
        return replies

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

    async def _route(self, turn: Turn, state: dict[str, Any], text: str) -> list[Reply]:
        active = self._active_flow(state)
        replies: list[Reply] = []
        if active is not None:
            touched = active[1].touched()
            limit = timedelta(hours=self.settings.flow_timeout_hours)
            if touched is not None and turn.now - touched > limit:
                await self._end_flow(turn, state, *active)
                replies.append(Reply(turn.render("flow_timeout")))
                active = None
        if turn.inbound.payload:
            return replies + await self._payload(turn, state, turn.inbound.payload)
        if not text.strip() and not turn.inbound.attachments:
            reply = [Reply(turn.render("empty"))]
            return replies + reply + (await self._reprompt(turn, state) if active else [])
        if turn.inbound.attachments and active is None:
            return [*replies, Reply(turn.render("documents_outside_flow"))]
        understanding = (
            self.understander.understand(text, self.profile.key, turn.lang)
            if text.strip()
            else Understanding("empty")
        )
        if active is not None:
            return replies + await self._in_flow(turn, state, understanding)
        return replies + await self._outside_flow(turn, state, understanding, text)

    def _active_flow(self, state: dict[str, Any]) -> tuple[Flow, FlowState] | None:
        raw = state.get("flow")
        if not raw:
            return None
        flow_state = FlowState.from_dict(raw)
        flow = self.flows.get(flow_state.name)
        if flow is None:  # a flow removed since the state was saved
            state.pop("flow", None)
            return None
        return flow, flow_state

    async def _payload(self, turn: Turn, state: dict[str, Any], payload: str) -> list[Reply]:
        kind, _, rest = payload.partition(":")
        active = self._active_flow(state)
        if kind == "lang" and rest in ("en", "es", "zh_Hans"):
            turn.set_language(rest, explicit=True)
            return [Reply(turn.render("language_set"))] + await self._reprompt(turn, state)
        if kind == "topic":
            article = self.knowledge.article(self.profile.key, rest, turn.lang)
            if article is not None:
                return await self._answer(turn, state, article)
        if kind == "rate":
            escalation_id, _, stars = rest.partition(":")
            if escalation_id.isdigit() and stars in ("1", "2", "3", "4", "5"):
                rated = await repo.rate_escalation(
                    turn.session,
                    escalation_id=int(escalation_id),
                    conversation_id=turn.conversation_id,
                    rating=int(stars),
                    now=turn.now,
                )
                if rated:
                    return [Reply(turn.render("helpdesk/rated"))]
        if kind == "flow" and rest in self.flows:
            return await self.start_flow(turn, state, rest)
        if kind == "s" and active is not None:
            flow, flow_state = active
            flow_name, _, slot_value = rest.partition(":")
            slot, _, value = slot_value.partition(":")
            if flow_name == flow.name and slot == flow.next_slot(turn, flow_state):
                turn.answer = value
                return await self._answer_slot(turn, state, flow, flow_state)
        return [Reply(turn.render("stale_button"))] + await self._reprompt(turn, state)

    async def _in_flow(self, turn: Turn, state: dict[str, Any], understanding: Understanding) -> list[Reply]:
        flow, flow_state = self._active_flow(state) or (None, None)
        assert flow is not None and flow_state is not None
        name = understanding.name if understanding.kind in ("intent", "command") else None
        if name == "cancel":
            await self._end_flow(turn, state, flow, flow_state)
            return [Reply(turn.render("flow_cancelled", flow_title=turn.t(flow.title)))]
        if name == "back":
            if not flow_state.filled:
                return [Reply(turn.render("flow_back_first"))] + await self._reprompt(turn, state)
            slot = flow_state.filled.pop()
            flow_state.slots.pop(slot, None)
            self._save_flow(turn, state, flow_state)
            return [await flow.prompt(flow.next_slot(turn, flow_state) or slot, turn, flow_state)]
        if name == "help":
            slot = flow.next_slot(turn, flow_state) or ""
            return [Reply(flow.help(slot, turn, flow_state))] + await self._reprompt(turn, state)
        if understanding.kind == "language" or name == "language":
            chosen = (
                understanding.argument
                if understanding.kind == "language"
                else resolve_locale(understanding.argument)
            )
            if chosen and flow.name != "language":
                turn.set_language(chosen, explicit=True)
                return [Reply(turn.render("language_set"))] + await self._reprompt(turn, state)
        return await self._answer_slot(turn, state, flow, flow_state, understanding)

    async def _outside_flow(
        self, turn: Turn, state: dict[str, Any], understanding: Understanding, text: str
    ) -> list[Reply]:
        kind, name = understanding.kind, understanding.name
        turn.outcome = kind
        if kind == "language":
            turn.set_language(understanding.argument, explicit=True)
            return [Reply(turn.render("language_set"))]
        if kind in ("command", "intent"):
            if name == "language":
                chosen = resolve_locale(understanding.argument)
                if chosen:
                    turn.set_language(chosen, explicit=True)
                    return [Reply(turn.render("language_set"))]
                return await self.start_flow(turn, state, "language")
            if name == "greeting":
                return [self._menu(turn, "welcome")]
            if name in ("help",):
                return [self._menu(turn, "help")]
            if name == "human":
                return await self.start_flow(turn, state, "handoff")
            if name == "hours":
                return [self.hours_reply(turn)]
            if name == "notice":
                notice = self.profile.notice_for(turn.lang)
                return [Reply(turn.render("notice", notice=notice) if notice else turn.render("no_notice"))]
            if name in ("thanks", "goodbye"):
                return [Reply(turn.render(name))]
            if name in ("cancel", "back"):
                return [Reply(turn.render("nothing_to_cancel"))]
            if name == "logout":
                return await self.logout(turn)
            if name in ("link", "status"):
                return await self.start_flow(turn, state, name)
            return [self._menu(turn, "help")]
        if kind == "answer" and name:
            article = self.knowledge.article(self.profile.key, name, turn.lang)
            if article is not None:
                return await self._answer(turn, state, article)
        if kind == "clarify":
            choices = [self._topic_choice(turn, topic) for topic in understanding.alternatives]
            choices.append(Choice(turn.t(N_("Talk to a person")), "flow:handoff"))
            return [Reply(turn.render("clarify"), tuple(choices))]
        turn.outcome = "unknown"
        await repo.record_unanswered(
            turn.connection,
            conversation_id=turn.conversation_id,
            registry=self.profile.key,
            text=text,
            language=turn.lang,
            now=turn.now,
        )
        return [self._menu(turn, "unknown")]

    # -- answers ------------------------------------------------------------------------------------------

    def _topic_choice(self, turn: Turn, topic: str) -> Choice:
        article = self.knowledge.article(self.profile.key, topic, turn.lang)
        return Choice(article.title if article else topic, f"topic:{topic}")

    def _menu(self, turn: Turn, template: str) -> Reply:
        topics = [t for t in MENU_TOPICS if self.knowledge.article(self.profile.key, t, turn.lang)]
        if not topics:
            topics = self.knowledge.topics(self.profile.key)[:5]
        choices = [self._topic_choice(turn, topic) for topic in topics]
        choices.append(Choice(turn.t(N_("Talk to a person")), "flow:handoff"))
        return Reply(turn.render(template), tuple(choices))

    async def _answer(self, turn: Turn, state: dict[str, Any], article: Article) -> list[Reply]:
        if article.kind == "action" and article.flow in self.flows:
            return await self.start_flow(turn, state, article.flow)
        # an article's answer depends only on the article and the member's language: rendered once
        key = (article.id, article.lang, turn.lang)
        reply = self._answers.get(key)
        if reply is None:
            reply = self._answers[key] = self._article_reply(turn, article)
        return [reply]

    def _article_reply(self, turn: Turn, article: Article) -> Reply:
        choices: list[Choice] = []
        offer = article.flow if article.flow in self.flows and article.flow in self.profile.flows else None
        if offer:
            choices.append(Choice(turn.t(N_("Yes, start now")), f"flow:{offer}"))
        choices.extend(
            self._topic_choice(turn, related)
            for related in article.related[:3]
            if self.knowledge.article(self.profile.key, related, turn.lang)
        )
        links = (
            (Link(turn.t(N_("Read more on the registry's site")), article.source),) if article.source else ()
        )
        text = turn.render("answer", article=article, offer=offer)
        return Reply(text, tuple(choices), links)

    def hours_reply(self, turn: Turn) -> Reply:
        """Whether the help desk is open now, and if not, when it opens (from the profile's hours)."""
        if not self.hours.known:
            return Reply(turn.render("hours_unknown"))
        is_open = self.hours.is_open(turn.now)
        return Reply(turn.render("hours", is_open=is_open, next_opening=self.hours.next_opening(turn.now)))

    async def logout(self, turn: Turn) -> list[Reply]:
        removed = await repo.unlink(turn.session, channel=turn.channel, user_id=turn.user_id)
        turn.member = None
        return [Reply(turn.render("logged_out" if removed else "not_linked"))]

    # -- flows --------------------------------------------------------------------------------------------

    async def _end_flow(self, turn: Turn, state: dict[str, Any], flow: Flow, flow_state: FlowState) -> None:
        """Stop the flow early: it undoes what it kept, and nothing of it is left in the conversation."""
        await flow.discard(turn, flow_state)
        state.pop("flow", None)
        state.pop("after_link", None)

    def _save_flow(self, turn: Turn, state: dict[str, Any], flow_state: FlowState) -> None:
        flow_state.touched_at = turn.now.isoformat()
        state["flow"] = flow_state.to_dict()

    async def start_flow(self, turn: Turn, state: dict[str, Any], name: str) -> list[Reply]:
        """Begin flow ``name`` (linking the chat account first when the flow needs a verified member)."""
        flow = self.flows.get(name)
        if flow is None or (name not in self.profile.flows and name != "language"):
            return [Reply(turn.render("flow_unavailable"))]
        if flow.needs_link and turn.member is None:
            link = self.flows.get("link")
            if link is None:
                return [Reply(turn.render("flow_unavailable"))]
            state["after_link"] = name
            flow = link
        state.pop("flow", None)
        flow_state = FlowState(name=flow.name)
        started = await flow.start(turn, flow_state)
        if isinstance(started, Done):
            return list(started.replies)
        self._save_flow(turn, state, flow_state)
        return started + await self._next(turn, state, flow, flow_state)

    async def _next(
        self, turn: Turn, state: dict[str, Any], flow: Flow, flow_state: FlowState
    ) -> list[Reply]:
        slot = flow.next_slot(turn, flow_state)
        if slot is not None:
            self._save_flow(turn, state, flow_state)
            return [await flow.prompt(slot, turn, flow_state)]
        state.pop("flow", None)
        replies = await flow.complete(turn, flow_state)
        after = state.pop("after_link", None)
        if flow.name == "link" and after and turn.member is not None:
            replies += await self.start_flow(turn, state, after)
        return replies

    async def _reprompt(self, turn: Turn, state: dict[str, Any]) -> list[Reply]:
        active = self._active_flow(state)
        if active is None:
            return []
        flow, flow_state = active
        slot = flow.next_slot(turn, flow_state)
        return [await flow.prompt(slot, turn, flow_state)] if slot else []

    async def _answer_slot(
        self,
        turn: Turn,
        state: dict[str, Any],
        flow: Flow,
        flow_state: FlowState,
        understanding: Understanding | None = None,
    ) -> list[Reply]:
        slot = flow.next_slot(turn, flow_state)
        if slot is None:
            return await self._next(turn, state, flow, flow_state)
        result = await flow.validate(slot, turn, flow_state)
        if isinstance(result, Done):
            await self._end_flow(turn, state, flow, flow_state)
            return list(result.replies)
        if isinstance(result, Stay):
            self._save_flow(turn, state, flow_state)
            return list(result.replies)
        if isinstance(result, Reask):
            self._save_flow(turn, state, flow_state)
            if understanding is not None and understanding.kind == "answer" and understanding.name:
                article = self.knowledge.article(self.profile.key, understanding.name, turn.lang)
                if article is not None and article.kind == "article":
                    # a question asked mid-flow: answer it, then carry on where the member was
                    answer = await self._answer(turn, state, article)
                    back = Reply(turn.render("back_to_flow", flow_title=turn.t(flow.title)))
                    return [*answer, back, await flow.prompt(slot, turn, flow_state)]
            return [Reply(result.reason), await flow.prompt(slot, turn, flow_state)]
        flow_state.slots[slot] = result
        flow_state.filled.append(slot)
        return await self._next(turn, state, flow, flow_state)
