"""Routing one turn of a conversation: a button, the active flow, or what the member means.

The engine owns the turn's mechanics (transaction, ordering, retries); the router decides what to say.
A button's payload comes first (pressed, or typed as its number, its label or a yes/no); then the active
flow; then what the message is understood to be, each intent going to its handler in ``INTENT_HANDLERS``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from bot.config import Profile, Settings
from bot.flows import Done, Flow, FlowState, Reask, Stay
from bot.hours import SupportHours
from bot.i18n import N_, fmt_weekly_hours, resolve_locale, zone_name
from bot.intents import Understander, Understanding, match_intent
from bot.intents.answers import pressed, yes_or_no
from bot.intents.requests import asks_for_person, asks_to_do
from bot.knowledge import Article, KnowledgeBase
from bot.messages import Choice, Link, Reply
from bot.registry import repo
from bot.turn import Turn
from bot.understanding.message import Message

logger = logging.getLogger(__name__)

PERSON_TOPIC = "talk-to-person"  # its own button, "Talk to a person", is on every menu
DEFAULT_MENU = ("find-registry-id", "withdraw-training", "audit-request", "appeal", "forgot-password")
MIN_REASON = 4.0  # content words a request for a person needs to count as the question for staff
CONTROL_INTENTS = frozenset({"cancel", "back", "help"})
# intents answered in the middle of a flow when the message does not answer its question
ASIDE = frozenset({"hours", "notice", "thanks", "greeting"})

State = dict[str, Any]
Handler = Callable[["Router", Turn, State, Message, Understanding], Awaitable[list[Reply]]]


class Router:
    """Decides the replies of a turn for one registry profile."""

    def __init__(
        self,
        *,
        settings: Settings,
        profile: Profile,
        knowledge: KnowledgeBase,
        understander: Understander,
        flows: dict[str, Flow],
        hours: SupportHours,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.knowledge = knowledge
        self.understander = understander
        self.flows = flows
        self.hours = hours
        # (article, its language, member's language, asking whether it helped)
        self._answers: dict[tuple[str, str, str, bool], Reply] = {}

    async def route(self, turn: Turn, state: State, message: Message) -> list[Reply]:
        """The replies to ``message`` (or to the button the turn pressed)."""
        replies = await self._expire(turn, state)
        turn.unanswered = state.pop("question", None)  # only the turn right after it may hand it on
        active = self._active_flow(state)
        payload = turn.inbound.payload
        if payload is None and state.get("shown") and not self._takes_control(message):
            payload = self._typed_press(state, message)
        if payload:
            return replies + await self._payload(turn, state, payload)
        if message.empty and not turn.inbound.attachments:
            return [*replies, Reply(turn.render("empty")), *await self._reprompt(turn, state)]
        if turn.inbound.attachments and active is None:
            return [*replies, Reply(turn.render("documents_outside_flow"))]
        if active is None and self._declines_offer(state, message):
            return [*replies, Reply(turn.render("offer_declined"))]
        # inside a flow the topic model is asked only if the message does not answer the flow's question
        understanding = self.understander.understand(message, self.profile.key, topics=active is None)
        if active is not None:
            return replies + await self._in_flow(turn, state, message, understanding)
        return replies + await self._outside_flow(turn, state, message, understanding)

    # -- buttons ------------------------------------------------------------------------------------------

    @staticmethod
    def shown(state: State, replies: list[Reply]) -> None:
        """Remember the buttons of this turn's replies, so the next message can press one by typing."""
        state["shown"] = [
            [choice.label, choice.payload, choice.meaning] for reply in replies for choice in reply.choices
        ]

    @staticmethod
    def _takes_control(message: Message) -> bool:
        """A command, "cancel", "back", "help" or a person asked for: never taken as a button pressed."""
        return (
            message.raw.lstrip().startswith("/")
            or match_intent(message.raw) in CONTROL_INTENTS
            or asks_for_person(message)
        )

    def _typed_press(self, state: State, message: Message) -> str | None:
        shown = [Choice(*entry) for entry in state.get("shown", ())]
        choice = pressed(message, shown)
        return choice.payload if choice is not None else None

    def _declines_offer(self, state: State, message: Message) -> bool:
        """A typed no to "would you like me to help you with this now?"."""
        offered = any(meaning == "yes" for _, _, meaning in state.get("shown", ()))
        return offered and yes_or_no(message) is False

    async def _payload(self, turn: Turn, state: State, payload: str) -> list[Reply]:
        kind, _, rest = payload.partition(":")
        active = self._active_flow(state)
        turn.outcome = "button"
        if kind == "lang" and rest in ("en", "es", "zh_Hans"):
            turn.set_language(rest, explicit=True)
            return [Reply(turn.render("language_set")), *await self._reprompt(turn, state)]
        if kind == "topic":
            article = self.knowledge.article(self.profile.key, rest, turn.lang)
            if article is not None:
                if active is not None:  # the steps asked for mid-errand: show them, then carry on
                    return [*self._article_replies(turn, article), *await self._back_to_flow(turn, state)]
                return await self._answer(turn, state, article)
        if kind == "steps":  # the article instead of the errand it was offered beside: the errand stops
            article = self.knowledge.article(self.profile.key, rest, turn.lang)
            if article is not None:
                if active is not None:
                    await self._end_flow(turn, state, *active)
                return self._article_replies(turn, article)
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
        if kind == "helped":
            feedback_id, _, said = rest.partition(":")
            if feedback_id.isdigit() and said in ("yes", "no"):
                return await self._helped(turn, state, int(feedback_id), said == "yes")
        if kind == "flow" and rest in self.flows:
            return await self.start_flow(turn, state, rest, prefill=self._pending_question(turn, rest))
        if kind == "s" and active is not None:
            flow, flow_state = active
            flow_name, _, slot_value = rest.partition(":")
            slot, _, value = slot_value.partition(":")
            if flow_name == flow.name and slot == flow.next_slot(turn, flow_state):
                turn.answer = value
                return await self._answer_slot(turn, state, flow, flow_state)
        return [Reply(turn.render("stale_button")), *await self._reprompt(turn, state)]

    # -- in a flow ----------------------------------------------------------------------------------------

    async def _in_flow(
        self, turn: Turn, state: State, message: Message, understanding: Understanding
    ) -> list[Reply]:
        flow, flow_state = self._active_flow(state) or (None, None)
        assert flow is not None and flow_state is not None
        turn.outcome = "flow"
        name = understanding.name if understanding.kind in ("intent", "command") else None
        if name == "cancel":
            await self._end_flow(turn, state, flow, flow_state)
            return [Reply(turn.render("flow_cancelled", flow_title=turn.t(flow.title)))]
        if name == "back":
            if not flow_state.filled:
                return [Reply(turn.render("flow_back_first")), *await self._reprompt(turn, state)]
            slot = flow_state.filled.pop()
            flow_state.slots.pop(slot, None)
            self._save_flow(turn, state, flow_state)
            return [await flow.prompt(flow.next_slot(turn, flow_state) or slot, turn, flow_state)]
        if name == "help":
            slot = flow.next_slot(turn, flow_state) or ""
            return [Reply(flow.help(slot, turn, flow_state)), *await self._reprompt(turn, state)]
        if name == "human" and flow.name != "handoff":
            await self._end_flow(turn, state, flow, flow_state)
            return await self._handoff(turn, state, message, understanding)
        if understanding.kind == "language" or name == "language":
            chosen = (
                understanding.argument
                if understanding.kind == "language"
                else resolve_locale(understanding.argument)
            )
            if chosen and flow.name != "language":
                turn.set_language(chosen, explicit=True)
                return [Reply(turn.render("language_set")), *await self._reprompt(turn, state)]
        return await self._answer_slot(turn, state, flow, flow_state, message, understanding)

    # -- outside a flow -------------------------------------------------------------------------------------

    async def _outside_flow(
        self, turn: Turn, state: State, message: Message, understanding: Understanding
    ) -> list[Reply]:
        turn.outcome = understanding.kind
        if understanding.kind in ("command", "intent"):
            handler = INTENT_HANDLERS.get(understanding.name or "", Router._help)
            return await handler(self, turn, state, message, understanding)
        if understanding.kind == "language":
            turn.set_language(understanding.argument, explicit=True)
            return [Reply(turn.render("language_set"))]
        if understanding.kind == "answer" and understanding.name:
            article = self.knowledge.article(self.profile.key, understanding.name, turn.lang)
            if article is not None:
                if self._errand_asked(article, message):
                    return await self._errand(turn, state, article)
                return await self._answer(turn, state, article, message)
        state["question"] = message.raw  # a person taking over starts from it
        await turn.books.record_unanswered(  # asked back about or declined: a content gap for staff to see
            conversation_id=turn.conversation_id,
            registry=self.profile.key,
            text=message.raw,
            language=turn.lang,
            now=turn.now,
            kind="clarify" if understanding.kind == "clarify" else "unknown",
        )
        if understanding.kind == "clarify":
            choices = self._topic_choices(turn, understanding.alternatives)
            choices.append(Choice(turn.t(N_("Talk to a person")), "flow:handoff"))
            return [Reply(turn.render("clarify"), tuple(choices))]
        turn.outcome = "unknown"
        return [self._menu(turn, "unknown")]

    def _errand_asked(self, article: Article, message: Message) -> bool:
        """Whether the member asked the assistant to do the article's errand, not how to do it."""
        return (
            article.kind == "flow"
            and article.flow in self.flows
            and article.flow in self.profile.flows
            and asks_to_do(message)
        )

    async def _errand(self, turn: Turn, state: State, article: Article) -> list[Reply]:
        """Start the errand at once, with the article's steps one tap away."""
        assert article.flow is not None
        replies = await self.start_flow(turn, state, article.flow)
        steps = Choice(turn.t(N_("Show me the steps instead")), f"steps:{article.id}")
        if replies and self._active_flow(state) is not None:
            last = replies[-1]
            replies[-1] = Reply(last.text, (*last.choices, steps), last.links)
        return replies

    # -- intent handlers ------------------------------------------------------------------------------------

    async def _greet(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        return [self._menu(turn, "welcome")]

    async def _help(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        return [self._menu(turn, "help")]

    async def _say(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        return [Reply(turn.render(u.name or "help"))]

    async def _nothing_to_cancel(
        self, turn: Turn, state: State, message: Message, u: Understanding
    ) -> list[Reply]:
        return [Reply(turn.render("nothing_to_cancel"))]

    async def _hours(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        return [self.hours_reply(turn)]

    async def _notice(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        notice = self.profile.notice_for(turn.lang)
        return [Reply(turn.render("notice", notice=notice) if notice else turn.render("no_notice"))]

    async def _language(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        chosen = resolve_locale(u.argument)
        if chosen:
            turn.set_language(chosen, explicit=True)
            return [Reply(turn.render("language_set"))]
        return await self.start_flow(turn, state, "language")

    async def _handoff(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        """A person: the message is the question for staff when it says more than "a person, please"."""
        reason = message.raw.strip() if message.content_size >= MIN_REASON else None
        prefill = {"question": reason} if reason else self._pending_question(turn, "handoff")
        return await self.start_flow(turn, state, "handoff", prefill=prefill)

    async def _logout(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        removed = await repo.unlink(turn.session, channel=turn.channel, user_id=turn.user_id)
        turn.member = None
        return [Reply(turn.render("logged_out" if removed else "not_linked"))]

    async def _flow_named(self, turn: Turn, state: State, message: Message, u: Understanding) -> list[Reply]:
        return await self.start_flow(turn, state, u.name or "")

    # -- answers ------------------------------------------------------------------------------------------

    def _topic_choice(self, turn: Turn, topic: str) -> Choice:
        article = self.knowledge.article(self.profile.key, topic, turn.lang)
        return Choice(article.title if article else topic, f"topic:{topic}")

    def _topic_choices(self, turn: Turn, topics: Iterable[str]) -> list[Choice]:
        """Buttons for ``topics``, leaving out the person (offered by its own button beside them)."""
        return [self._topic_choice(turn, topic) for topic in topics if topic != PERSON_TOPIC]

    def _menu(self, turn: Turn, template: str) -> Reply:
        available = set(self.knowledge.topics(self.profile.key))
        choices = self._topic_choices(
            turn, [t for t in (self.profile.menu or DEFAULT_MENU) if t in available]
        )
        choices.append(Choice(turn.t(N_("Talk to a person")), "flow:handoff"))
        errands = [turn.t(self.flows[name].title) for name in self.profile.flows if name in ERRANDS]
        return Reply(turn.render(template, errands=errands), tuple(choices))

    async def _answer(
        self, turn: Turn, state: State, article: Article, message: Message | None = None
    ) -> list[Reply]:
        if article.kind == "action" and article.flow in self.flows:
            if article.flow == "handoff" and message is not None:
                return await self._handoff(turn, state, message, Understanding("intent", "human"))
            return await self.start_flow(turn, state, article.flow)
        question = message.raw if message is not None else turn.unanswered or ""
        return await self._answer_asking_feedback(turn, state, article, question)

    async def _answer_asking_feedback(
        self, turn: Turn, state: State, article: Article, question: str
    ) -> list[Reply]:
        """The article's answer with a 👍/👎 pair, the answer kept (per article and language) for them."""
        feedback_id = await turn.books.record_answer(
            conversation_id=turn.conversation_id,
            registry=self.profile.key,
            topic=article.id,
            language=article.lang,
            question=question,
            now=turn.now,
        )
        # the member's own words, for a person taking over after a 👎 (staff read them unmasked)
        state["answered"] = [feedback_id, question]
        (reply,) = self._article_replies(turn, article, asking=True)
        asked = not any(choice.meaning == "yes" for choice in reply.choices)  # else a yes starts the errand
        pair = (
            Choice(turn.t(N_("👍 Helpful")), f"helped:{feedback_id}:yes", "yes" if asked else ""),
            Choice(turn.t(N_("👎 Not helpful")), f"helped:{feedback_id}:no", "no" if asked else ""),
        )
        return [Reply(reply.text, (*reply.choices, *pair), reply.links)]

    async def _helped(self, turn: Turn, state: State, feedback_id: int, helpful: bool) -> list[Reply]:
        """The member's 👍 or 👎 on an answer; a 👎 is a content gap, and offers the next likely topics and a
        person (who starts from the question)."""
        given = await repo.answer_helped(
            turn.connection, feedback_id=feedback_id, conversation_id=turn.conversation_id, helpful=helpful
        )
        if given is None:
            return [Reply(turn.render("feedback_noted"))]
        if helpful:
            return [Reply(turn.render("feedback_thanks"))]
        if given.question:
            await turn.books.record_unanswered(
                conversation_id=turn.conversation_id,
                registry=self.profile.key,
                text=given.question,
                language=given.language or turn.lang,
                now=turn.now,
                kind="unhelpful",
                topic=given.topic,
            )
            answered = state.pop("answered", None) or [None, ""]
            # a person taking over starts from it, in the member's words when it was the last answer
            state["question"] = answered[1] if answered[0] == feedback_id else given.question
        others = self.understander.next_likely(
            Message.of(given.question, given.language or turn.lang), self.profile.key, besides=given.topic
        )
        choices = self._topic_choices(turn, others)
        choices.append(Choice(turn.t(N_("Talk to a person")), "flow:handoff"))
        return [Reply(turn.render("feedback_unhelpful", offered=len(choices) > 1), tuple(choices))]

    def _article_replies(self, turn: Turn, article: Article, *, asking: bool = False) -> list[Reply]:
        """The article's answer; ``asking`` whether it helped (when it offers no errand to say yes to)."""
        # an article's answer depends only on the article and the member's language: rendered once
        key = (article.id, article.lang, turn.lang, asking)
        reply = self._answers.get(key)
        if reply is None:
            reply = self._answers[key] = self._article_reply(turn, article, asking)
        return [reply]

    def _article_reply(self, turn: Turn, article: Article, asking: bool) -> Reply:
        choices: list[Choice] = []
        offer = article.flow if article.flow in self.flows and article.flow in self.profile.flows else None
        if offer:
            choices.append(Choice(turn.t(N_("Yes, start now")), f"flow:{offer}", "yes"))
        choices.extend(
            self._topic_choice(turn, related)
            for related in article.related[:3]
            if self.knowledge.article(self.profile.key, related, turn.lang)
        )
        links = (
            (Link(turn.t(N_("Read more on the registry's site")), article.source),) if article.source else ()
        )
        text = turn.render("answer", article=article, offer=offer, asking=asking)
        return Reply(text, tuple(choices), links)

    def hours_reply(self, turn: Turn) -> Reply:
        """The help desk's weekly hours, whether it is open now, and when it opens next."""
        if not self.hours.known:
            return Reply(turn.render("hours_unknown"))
        return Reply(
            turn.render(
                "hours",
                weekly=fmt_weekly_hours(self.hours.weekly_hours(), turn.lang, self.profile.timezone),
                zone=zone_name(self.profile.timezone, turn.lang, turn.now),
                is_open=self.hours.is_open(turn.now),
                next_opening=self.hours.next_opening(turn.now),
                closes_at=self.hours.closes_at(turn.now),
                next_closure=self.hours.next_holiday(turn.now),
            )
        )

    # -- flows --------------------------------------------------------------------------------------------

    async def _expire(self, turn: Turn, state: State) -> list[Reply]:
        """End a flow left untouched too long, and say so."""
        active = self._active_flow(state)
        if active is None:
            return []
        touched = active[1].touched()
        if touched is not None and turn.now - touched > timedelta(hours=self.settings.flow_timeout_hours):
            await self._end_flow(turn, state, *active)
            return [Reply(turn.render("flow_timeout"))]
        return []

    def _active_flow(self, state: State) -> tuple[Flow, FlowState] | None:
        raw = state.get("flow")
        if not raw:
            return None
        flow_state = FlowState.from_dict(raw)
        flow = self.flows.get(flow_state.name)
        if flow is None:  # a flow removed since the state was saved
            state.pop("flow", None)
            return None
        return flow, flow_state

    @staticmethod
    def _pending_question(turn: Turn, flow: str) -> dict[str, str] | None:
        """The question the assistant could not answer just before, for a person taking it over."""
        return {"question": turn.unanswered} if flow == "handoff" and turn.unanswered else None

    async def _end_flow(self, turn: Turn, state: State, flow: Flow, flow_state: FlowState) -> None:
        """Stop the flow early: it undoes what it kept, and nothing of it is left in the conversation."""
        await flow.discard(turn, flow_state)
        state.pop("flow", None)
        state.pop("after_link", None)

    def _save_flow(self, turn: Turn, state: State, flow_state: FlowState) -> None:
        flow_state.touched_at = turn.now.isoformat()
        state["flow"] = flow_state.to_dict()

    async def start_flow(
        self, turn: Turn, state: State, name: str, *, prefill: dict[str, str] | None = None
    ) -> list[Reply]:
        """Begin flow ``name`` (linking the chat account first when the flow needs a verified member);
        ``prefill`` answers some of its questions already (a person's question taken from the message)."""
        turn.outcome = "flow"
        flow = self.flows.get(name)
        if flow is None or (name not in self.profile.flows and name != "language"):
            return [Reply(turn.render("flow_unavailable"))]
        if flow.needs_link and turn.member is None:
            link = self.flows.get("link")
            if link is None:
                return [Reply(turn.render("flow_unavailable"))]
            state["after_link"] = name
            flow, prefill = link, None
        state.pop("flow", None)
        flow_state = FlowState(name=flow.name)
        started = await flow.start(turn, flow_state)
        if isinstance(started, Done):
            return list(started.replies)
        for slot, value in (prefill or {}).items():
            if slot in flow.slots:
                flow_state.slots[slot] = value
                flow_state.filled.append(slot)
        self._save_flow(turn, state, flow_state)
        return started + await self._next(turn, state, flow, flow_state)

    async def _next(self, turn: Turn, state: State, flow: Flow, flow_state: FlowState) -> list[Reply]:
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

    async def _reprompt(self, turn: Turn, state: State) -> list[Reply]:
        active = self._active_flow(state)
        if active is None:
            return []
        flow, flow_state = active
        slot = flow.next_slot(turn, flow_state)
        return [await flow.prompt(slot, turn, flow_state)] if slot else []

    async def _back_to_flow(self, turn: Turn, state: State) -> list[Reply]:
        active = self._active_flow(state)
        if active is None:
            return []
        back = Reply(turn.render("back_to_flow", flow_title=turn.t(active[0].title)))
        return [back, *await self._reprompt(turn, state)]

    async def _aside(
        self, turn: Turn, state: State, message: Message, understanding: Understanding
    ) -> list[Reply]:
        """The answer to a question asked in the middle of a flow (an article, the hours), or nothing."""
        if understanding.kind == "unknown":  # the topic model was left out until the answer did not fit
            understanding = self.understander.search(message, self.profile.key)
        if understanding.kind in ("intent", "command") and understanding.name in ASIDE:
            return await INTENT_HANDLERS[understanding.name](self, turn, state, message, understanding)
        if understanding.kind == "answer" and understanding.name:
            article = self.knowledge.article(self.profile.key, understanding.name, turn.lang)
            if article is not None and article.kind == "article":
                return self._article_replies(turn, article)
        return []

    async def _answer_slot(
        self,
        turn: Turn,
        state: State,
        flow: Flow,
        flow_state: FlowState,
        message: Message | None = None,
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
            aside = (
                await self._aside(turn, state, message, understanding) if message and understanding else []
            )
            if aside:  # not an answer to the question but one of its own: answer it, then carry on
                return [*aside, *await self._back_to_flow(turn, state)]
            return [Reply(result.reason), await flow.prompt(slot, turn, flow_state)]
        flow_state.slots[slot] = result
        flow_state.filled.append(slot)
        return await self._next(turn, state, flow, flow_state)


# errands a registry may offer, named in the menu's introduction when the profile offers them
ERRANDS = ("find-registry-id", "withdraw-training", "audit-request", "appeal", "status")

INTENT_HANDLERS: dict[str, Handler] = {
    "greeting": Router._greet,
    "help": Router._help,
    "thanks": Router._say,
    "goodbye": Router._say,
    "cancel": Router._nothing_to_cancel,
    "back": Router._nothing_to_cancel,
    "hours": Router._hours,
    "notice": Router._notice,
    "language": Router._language,
    "human": Router._handoff,
    "logout": Router._logout,
    "link": Router._flow_named,
    "status": Router._flow_named,
}
