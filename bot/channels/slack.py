"""The staff side in Slack (slack-bolt, async): escalations, thread replies, decisions, /registry.

Everything staff do goes through ``HelpDesk``; this module only turns Slack's events into those calls and
the help desk's cards into Block Kit. HTTP mode serves ``POST /slack/events`` (signatures verified by Bolt);
Socket Mode is used instead when an app-level token is set. Slack retries an event it thinks was lost, so
each event id is processed once; an event is acknowledged only once what it causes is stored (Bolt's
``process_before_response``), so while the database is away Slack is answered 500 and delivers it again.
Everything staff type, click or submit is checked before use: what does not parse gets a polite answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.config import Settings
from bot.helpdesk import MAX_STATS_DAYS, EscalationCard, HelpDesk, MemberRecord, Outcome, RequestCard, Stats
from bot.learning import ContentGaps, Digest, DigestGroup

logger = logging.getLogger(__name__)

# a card still unposted this long after its row was stored is one a stopped process never posted (a live
# process posts within seconds, or is still retrying a Slack rate limit)
MISSED_AFTER = timedelta(minutes=2)
# the engine's events that put a card in Slack, and the kind of card
CARD_OF_EVENT = {"escalation": "escalation", "audit_request": "audit", "appeal": "appeal"}
SUMMARY_LOOKBACK = timedelta(days=7)  # after-hours hand-offs older than this are in /registry queue anyway
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "zh_Hans": "Chinese (Simplified)"}

# Block Kit's limits (https://api.slack.com/reference/block-kit), and shorter ones that keep a card readable
MAX_SECTION = 3000  # a section's text
MAX_HEADER = 150  # a header's plain text
MAX_METADATA = 3000  # a modal's private_metadata
MAX_MESSAGE = 40_000  # a message's top-level text (Slack cuts the rest)
MAX_LINE = 300  # a member label or one transcript line on a card
MAX_DOCUMENT_NAME = 50  # a document's name on a card, start and extension (the thread has it whole)
MAX_PREVIEW = 150  # a question in a notification, a list or the morning summary
MAX_LISTED = 25  # hand-offs listed in /registry queue or the morning summary
MAX_REASON = 2000  # a denial's reason, typed by staff for the member
MAX_ROW_ID = 2**31 - 1  # database ids are 32-bit integers

USAGE = "Usage: /registry lookup <Registry ID> · /registry queue · /registry stats [days] · /registry gaps"
MAX_OPTIONS = 100  # a select menu's options
MAX_OPTION_TEXT = 75  # an option's text
MAX_HELPFULNESS = 20  # articles listed under "Article helpfulness"
NEAR_SHOWN = 3  # articles named after a group's 👎
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KIND_NAMES = {"unknown": "declined", "clarify": "asked back", "unhelpful": "👎"}
DECISIONS = {
    "labelled": "✅ Belongs to",
    "new_article": "📝 Needs a new article:",
    "ignored": "🚫 Ignored",
}
STALE_BUTTON = "That button is not one this app made (or it is too old to use): nothing changed."
STALE_FORM = "This form is not one this app made (or it is too old to use): nothing changed."
NOT_ON_STAFF_LIST = (
    "Your reply did not reach the member: only people on the help desk staff list "
    "(REGISTRY_BOT_SLACK_STAFF_IDS) can answer members. Ask an administrator to add you, "
    "or ask a staff member to answer."
)
_DIGITS = re.compile(r"[0-9]{1,10}")
_REGISTRY_ID = re.compile(r"[A-Za-z0-9-]{1,32}")
_SLACK_ID = re.compile(r"[A-Za-z0-9]{0,32}")
_SLACK_TS = re.compile(r"[0-9]{0,16}(?:\.[0-9]{1,8})?")


def _clip(text: str, limit: int = MAX_SECTION) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never inside an escaped ``&amp;``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _escape(text: str) -> str:
    """Slack's mrkdwn needs &, < and > escaped, so a member's text cannot ping or link anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str, limit: int) -> str:
    """A member's words, escaped for Slack and clipped to ``limit`` characters."""
    return _clip(_escape(text), limit)


def _shortened(name: str, limit: int = MAX_DOCUMENT_NAME) -> str:
    """A file name cut in the middle to ``limit`` characters, so its extension still shows."""
    return name if len(name) <= limit else f"{name[: limit - 16]}…{name[-15:]}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text) or " "}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, MAX_HEADER)}}


def _row_id(value: object) -> int | None:
    """A database id from a button or form, or None when it is not one (staff input is never trusted)."""
    text = value if isinstance(value, str) else ""
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


def _request_of(value: object) -> tuple[str, int] | None:
    """``("audit" | "appeal", id)`` from a button value like ``audit:12``, or None."""
    kind, _, row = (value if isinstance(value, str) else "").partition(":")
    row_id = _row_id(row)
    return (kind, row_id) if kind in ("audit", "appeal") and row_id is not None else None


def _denial_of(metadata: object) -> tuple[str, int, str, str] | None:
    """(kind, id, channel, ts) from a deny modal's private_metadata, or None when it is not ours."""
    parts = (metadata if isinstance(metadata, str) else "").split("|")
    request = _request_of(parts[0]) if len(parts) == 3 else None
    if request is None or not _SLACK_ID.fullmatch(parts[1]) or not _SLACK_TS.fullmatch(parts[2]):
        return None
    return (*request, parts[1], parts[2])


def _days_of(args: list[str]) -> int | None:
    """The days of ``/registry stats [days]`` (7 when absent), or None when they are not a valid number."""
    if not args:
        return 7
    days = _row_id(args[0]) if len(args) == 1 else None
    return days if days is not None and days <= MAX_STATS_DAYS else None


def escalation_blocks(card: EscalationCard) -> list[dict[str, Any]]:
    """The hand-off message staff see: who, what, the last messages, and Claim / Resolve."""
    header = "Hand-off (after hours)" if card.after_hours else "Hand-off"
    language = LANGUAGE_NAMES.get(card.language, card.language)
    facts = (
        f"*Member:* {_quote(card.member, MAX_LINE)}\n*Language:* {_escape(language)}"
        f"\n*Registry:* {_escape(card.registry)}\n*Status:* {_escape(card.status)}"
        + (f" by <@{card.claimed_by}>" if card.claimed_by else "")
    )
    blocks = [_header(header), _section(facts), _section(f"*Question:* {_escape(card.question)}")]
    if card.transcript:
        lines = (_clip(f"_{who}:_ {_escape(text)}", MAX_LINE) for who, text in card.transcript)
        blocks.append(_section("\n".join(lines)))
    if card.status != "resolved":
        buttons = [] if card.claimed_by else [_button("Claim", "claim", str(card.id), "primary")]
        buttons.append(_button("Resolve", "resolve", str(card.id)))
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def request_blocks(card: RequestCard) -> list[dict[str, Any]]:
    """An audit request or appeal waiting for a decision, with Approve / Deny."""
    title = "Qualification audit request" if card.kind == "audit" else f"Appeal of {card.audit_reference}"
    facts = (
        f"*{_escape(card.reference)}* · {_quote(card.member, MAX_LINE)}\n*Status:* {_escape(card.status)}"
        f"\n*Decision due:* {card.due_at:%Y-%m-%d}"
    )
    names = "\n".join(f"• {_escape(_shortened(name))}" for name in card.documents)
    blocks: list[dict[str, Any]] = [
        _header(title),
        _section(facts),
        _section(f"*Documents:*\n{names}" if names else "*Documents:* none"),
        _section(_escape(card.text) or "_(no text)_"),
    ]
    if card.status in ("submitted", "under_review"):
        value = f"{card.kind}:{card.id}"
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("Approve", "approve", value, "primary"),
                    _button("Deny", "deny", value, "danger"),
                ],
            }
        )
    return blocks


def _button(label: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _form(callback: str, metadata: str, title: str, submit: str, field: dict[str, Any]) -> dict[str, Any]:
    """A modal of one input ``field``; ``metadata`` comes back with the submission."""
    return {
        "type": "modal",
        "callback_id": callback,
        "private_metadata": metadata[:MAX_METADATA],
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "input", **field}],
    }


def deny_modal(value: str, reference: str) -> dict[str, Any]:
    """The form that asks for a denial's reason; ``value`` comes back as its private_metadata."""
    label = _clip(f"Why is {reference} denied? The member reads this.", 2000)
    return _form(
        "deny_reason",
        value,
        "Deny request",
        "Deny",
        {
            "block_id": "reason",
            "label": {"type": "plain_text", "text": label},
            "element": {
                "type": "plain_text_input",
                "action_id": "text",
                "multiline": True,
                "max_length": MAX_REASON,
            },
        },
    )


def _hand_off_lines(cards: list[EscalationCard], *, detailed: bool) -> list[str]:
    """One line per hand-off (at most ``MAX_LISTED``), the member's words escaped."""
    lines = []
    for card in cards[:MAX_LISTED]:
        when = f" {card.created_at:%Y-%m-%d %H:%M}" if detailed else ""
        status = f" [{card.status}]" if detailed else ""
        member, question = _quote(card.member, MAX_LINE), _quote(card.question, MAX_PREVIEW)
        lines.append(f"• #{card.id}{when} {member}{status}: {question}")
    if len(cards) > MAX_LISTED:
        lines.append(f"… and {len(cards) - MAX_LISTED} more (see /registry queue).")
    return lines


def _lookup_text(registry_id: str, record: MemberRecord | None) -> str:
    """What /registry lookup answers, the member's details escaped."""
    if record is None:
        return f"No member with Registry ID {_escape(registry_id)}."
    lines = [f"*{_escape(record.label)}* · {_escape(record.email)} · {_escape(record.role)}"]
    lines += [f"• {_escape(ref)}: {status} (due {due:%Y-%m-%d})" for ref, status, due in record.requests]
    lines += [
        f"• chat on {_escape(channel)}, last active {at:%Y-%m-%d %H:%M}" for channel, at in record.chats
    ]
    return _clip("\n".join(lines), MAX_MESSAGE)


def _gap_group_blocks(group: DigestGroup, topics: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """One group of the digest: its size, languages and examples, the articles it came close to, and
    staff's choices (belongs to …, needs a new article, ignore), or the decision taken and Undo."""
    languages = ", ".join(LANGUAGE_NAMES.get(lang, lang) for lang in group.languages)
    kinds = ", ".join(f"{KIND_NAMES.get(kind, kind)} {count}" for kind, count in group.kinds)
    lines = [f"*{group.size} question{'s' if group.size != 1 else ''}* · {_escape(languages)} · {kinds}"]
    if group.unhelpful_on:
        lines[0] += " (on " + "; ".join(_escape(title) for title in group.unhelpful_on[:NEAR_SHOWN]) + ")"
    lines += [f"> {_quote(text, MAX_PREVIEW)}" for _, text in group.examples]
    if group.near:
        near = " · ".join(f"{_escape(n.title)} ({n.probability:.0%})" for n in group.near)
        lines.append(f"_Came close to:_ {near}")
    section = _section("\n".join(lines))
    section["block_id"] = f"gap:{group.id}"
    if group.status == "open":
        section["accessory"] = {
            "type": "static_select",
            "action_id": "gap_topic",
            "placeholder": {"type": "plain_text", "text": "Belongs to…"},
            "options": [
                {
                    "text": {"type": "plain_text", "text": _clip(title, MAX_OPTION_TEXT)},
                    "value": f"{group.id}:{topic}",
                }
                for topic, title in topics[:MAX_OPTIONS]
            ],
        }
        buttons = [
            _button("Needs a new article", "gap_new_article", str(group.id)),
            _button("Ignore", "gap_ignore", str(group.id)),
        ]
        return [{"type": "divider"}, section, {"type": "actions", "elements": buttons}]
    decision = DECISIONS.get(group.status, group.status)
    if group.status == "labelled":
        decision += f" *{_escape(group.topic_title or '')}* (`{_escape(group.topic or '')}`)"
    elif group.status == "new_article":
        decision += f" `{_escape(group.topic or '')}`"
    if group.decided_by:
        decision += f" · by <@{group.decided_by}>"
    return [
        {"type": "divider"},
        section,
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(decision, MAX_LINE)}]},
        {"type": "actions", "elements": [_button("Undo", "gap_undo", str(group.id))]},
    ]


def digest_blocks(digest: Digest) -> list[dict[str, Any]]:
    """The weekly content-gap digest: the groups, largest first, what waits for a new article, and each
    article's helpfulness per language."""
    count = sum(group.size for group in digest.groups)
    blocks = [
        _header(f"Content gaps: the last {digest.days} days"),
        _section(
            f"{digest.questions} question(s) the assistant declined, asked back about, or whose answer got "
            f"a 👎; the {len(digest.groups)} largest group(s) of them ({count} questions) below. Say what "
            "each group belongs to: the assistant learns it at the next retrain."
            if digest.groups
            else f"No open content gaps in the last {digest.days} days."
        ),
    ]
    for group in digest.groups:
        blocks += _gap_group_blocks(group, digest.topics)
    if digest.waiting:
        lines = [
            f"• `{_escape(w.topic)}`: {w.size} question(s), e.g. “{_quote(w.example, MAX_PREVIEW)}” "
            f"(<@{w.decided_by}>, {w.decided_at:%Y-%m-%d})"
            for w in digest.waiting[:MAX_LISTED]
        ]
        blocks += [{"type": "divider"}, _section("*Waiting for a new article:*\n" + "\n".join(lines))]
    blocks += [{"type": "divider"}, _section(_helpfulness_text(digest))]
    return blocks


def _helpfulness_text(digest: Digest) -> str:
    """Each article answered in the period: per language, answers · 👍 · 👎."""
    per_article: dict[str, list[str]] = {}
    for title, figures in digest.helpfulness:
        language = LANGUAGE_NAMES.get(figures.language, figures.language)
        per_article.setdefault(title, []).append(
            f"{_escape(language)} {figures.answers} · {figures.helpful} · {figures.unhelpful}"
        )
    lines = [f"• {_escape(title)}: {' — '.join(parts)}" for title, parts in per_article.items()]
    shown = lines[:MAX_HELPFULNESS]
    if len(lines) > MAX_HELPFULNESS:
        shown.append(f"… and {len(lines) - MAX_HELPFULNESS} more article(s).")
    body = "\n".join(shown) or "No answers in this period."
    return _clip(f"*Article helpfulness* (answers · 👍 · 👎), last {digest.days} days:\n{body}")


def _digest_text(digest: Digest) -> str:
    """The digest's notification text (what a phone's notification shows)."""
    return f"Content gaps: {len(digest.groups)} group(s) of questions to look at"


def new_article_modal(metadata: str) -> dict[str, Any]:
    """The form that asks for the topic id of the article a group needs."""
    hint = (
        "Lower-case letters, digits and dashes. The group is listed by /registry gaps until an article "
        "with this id is published."
    )
    return _form(
        "gap_new_article",
        metadata,
        "Needs a new article",
        "Save",
        {
            "block_id": "topic",
            "label": {"type": "plain_text", "text": "Topic id of the new article"},
            "hint": {"type": "plain_text", "text": hint},
            "element": {
                "type": "plain_text_input",
                "action_id": "id",
                "max_length": 63,
                "placeholder": {"type": "plain_text", "text": "print-certificate"},
            },
        },
    )


def _stats_text(stats: Stats) -> str:
    rating = f"{stats.average_rating:.1f}" if stats.average_rating is not None else "none yet"
    gaps = "\n".join(f"  {n}× {_quote(q, MAX_PREVIEW)}" for q, n in stats.top_unanswered) or "  none"
    return (
        f"Last {stats.days} days: {stats.conversations} conversations, "
        f"{stats.answered_alone} answered without a person, {stats.handoffs} hand-offs, "
        f"average rating {rating}.\n"
        f"Top unanswered questions:\n{gaps}"
    )


class SlackChannel:
    """The help desk's Slack app."""

    name = "slack"

    def __init__(self, helpdesk: HelpDesk, settings: Settings, gaps: ContentGaps | None = None) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("REGISTRY_BOT_SLACK_BOT_TOKEN is not set")
        self.helpdesk = helpdesk
        self.settings = settings
        self.gaps = gaps
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        # 429: wait as long as Slack asks; 5xx and dropped connections: back off and try again
        self.client.retry_handlers.extend(
            [
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                AsyncServerErrorRetryHandler(max_retry_count=3),
                AsyncConnectionErrorRetryHandler(max_retry_count=3),
            ]
        )
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret,
            process_before_response=True,  # finish the work before answering: nothing is lost on a crash
            request_verification_enabled=secret is not None,
        )
        self.handler = AsyncSlackRequestHandler(self.app)
        self._socket_mode: Any = None
        self._mornings: asyncio.Task[None] | None = None
        self._digests: asyncio.Task[None] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        self._register()

    # -- the channel protocol -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        if self.settings.slack_app_token is not None:
            return []
        return [Route("/slack/events", self._events, methods=["POST"])]

    async def start(self) -> None:
        self._catching_up = asyncio.create_task(self._post_missed_quietly(), name="slack-catch-up")
        if self.helpdesk.hours.known and self.settings.slack_handoff_channel:
            self._mornings = asyncio.create_task(self._morning_summaries())
        if self.gaps is not None and self.gaps_channel:
            self._digests = asyncio.create_task(self._weekly_digests(), name="slack-gap-digests")
        if self.settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket_mode = AsyncSocketModeHandler(
                self.app, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket_mode.connect_async()

    async def stop(self) -> None:
        for task in (self._catching_up, self._mornings, self._digests):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._socket_mode is not None:
            await self._socket_mode.close_async()

    async def _morning_summaries(self) -> None:
        """When the help desk opens, post what came in after hours and still waits."""
        posted: datetime | None = None
        while True:
            now = self.helpdesk.clock()
            opening = self.helpdesk.hours.next_opening(max(now, posted) if posted else now)
            if opening is None:
                return
            await asyncio.sleep(max((opening - now).total_seconds(), 0) + 1)
            try:
                # with several `serve` processes, the first to claim this opening posts its summary
                if await self.helpdesk.first_delivery("slack-summary", opening.isoformat()):
                    await self.morning_summary(since=opening - SUMMARY_LOOKBACK)
            except Exception:  # Slack away this morning: tomorrow's summary still lists what waits
                logger.exception("morning summary not posted")
            posted = opening  # one summary per opening

    @property
    def gaps_channel(self) -> str:
        """Where the content-gap digest goes: its own channel, or the hand-off channel."""
        return self.settings.slack_gaps_channel or self.settings.slack_handoff_channel

    def next_digest(self, now: datetime) -> datetime:
        """The next weekly digest after ``now``: the configured day and local time, in the registry's zone."""
        zone = ZoneInfo(self.helpdesk.profile.timezone)
        local = now.astimezone(zone)
        days = (WEEKDAYS.index(self.settings.gaps_digest_day) - local.weekday()) % 7
        moment = datetime.combine(local.date() + timedelta(days=days), self.settings.gaps_digest_time, zone)
        return (
            moment if moment > now else datetime.combine(moment.date() + timedelta(days=7), moment.timetz())
        )

    async def _weekly_digests(self) -> None:
        """Post the content-gap digest every week at the configured time (once, whatever the processes)."""
        while True:
            now = self.helpdesk.clock()
            due = self.next_digest(now)
            await asyncio.sleep(max((due - now).total_seconds(), 0) + 1)
            try:
                if await self.helpdesk.first_delivery("slack-gaps", due.isoformat()):
                    await self.post_digest()
            except Exception:  # Slack or the database away: the next digest still holds the open questions
                logger.exception("content-gap digest not posted")

    async def post_digest(self) -> Digest | None:
        """Group the open content gaps into a new digest and post it to the gaps channel."""
        if self.gaps is None or not self.gaps_channel:
            return None
        digest = await self.gaps.digest()
        await self.client.chat_postMessage(
            channel=self.gaps_channel, text=_digest_text(digest), blocks=digest_blocks(digest)
        )
        return digest

    def healthy(self) -> bool:
        return True

    async def _events(self, request: Request) -> Response:
        return await self.handler.handle(request)

    # -- from the assistant to staff ----------------------------------------------------------------------

    async def on_event(self, event: str, row_id: int) -> None:
        """Engine listener: post new escalations, member messages, audit requests and appeals."""
        if event == "member_message":
            await self.post_member_message(row_id)
        elif event in CARD_OF_EVENT:
            await self.post_card(CARD_OF_EVENT[event], row_id)

    async def post_card(self, kind: str, row_id: int) -> None:
        """Post the card of an escalation, audit request or appeal (``kind`` as ``HelpDesk.record_post``)."""
        if kind == "escalation":
            await self.post_escalation(row_id)
        else:
            await self.post_request(kind, row_id)

    async def post_missed(self) -> int:
        """Post the cards of hand-offs and requests stored more than ``MISSED_AFTER`` ago that never reached
        Slack (a process stopped between storing one and posting it); each is claimed in the database
        first, so with several processes starting it is posted once. Returns how many were posted."""
        posted = 0
        for kind, row_id in await self.helpdesk.unposted(self.helpdesk.clock() - MISSED_AFTER):
            if await self.helpdesk.first_delivery("slack-card", f"{kind}:{row_id}"):
                await self.post_card(kind, row_id)
                posted += 1
        return posted

    async def _post_missed_quietly(self) -> None:
        try:
            if posted := await self.post_missed():
                logger.warning("posted %d card(s) a stopped process had not posted", posted)
        except Exception:  # Slack or the database away at start: staff still see them in /registry queue
            logger.exception("could not post the cards missed while stopped")

    async def post_escalation(self, escalation_id: int) -> None:
        card = await self.helpdesk.escalation_card(escalation_id)
        channel = self.settings.slack_handoff_channel
        if card is None or not channel:
            return
        response = await self.client.chat_postMessage(
            channel=channel,
            text=f"Hand-off: {_quote(card.question, MAX_PREVIEW)}",
            blocks=escalation_blocks(card),
        )
        await self.helpdesk.record_post(
            "escalation", escalation_id, channel=str(response["channel"]), ts=str(response["ts"])
        )

    async def post_member_message(self, entry_id: int) -> None:
        found = await self.helpdesk.member_message(entry_id)
        if found is None:
            return
        escalation, text = found
        if escalation.slack_channel and escalation.slack_ts:
            await self.client.chat_postMessage(
                channel=escalation.slack_channel,
                thread_ts=escalation.slack_ts,
                text=_clip(f"Member: {_escape(text)}", MAX_MESSAGE),
            )

    async def post_request(self, kind: str, row_id: int) -> None:
        card = await self.helpdesk.request_card(kind, row_id)
        channel = self.settings.slack_audit_channel if kind == "audit" else self.settings.slack_appeal_channel
        if card is None or not channel:
            return
        posted = await self.client.chat_postMessage(
            channel=channel,
            text=f"{_escape(card.reference)} needs a decision",
            blocks=request_blocks(card),
        )
        await self.helpdesk.record_post(kind, row_id, channel=str(posted["channel"]), ts=str(posted["ts"]))
        for filename, content in await self.helpdesk.request_files(kind, row_id):
            try:  # the documents go in the request's thread, so staff open them where they decide
                await self.client.files_upload_v2(
                    channel=channel,
                    thread_ts=str(posted["ts"]),
                    filename=filename,
                    title=filename,
                    content=content,
                )
            except Exception:  # the decision does not depend on Slack holding a copy: it is in the database
                logger.exception("could not upload a document of %s to Slack", card.reference)

    async def morning_summary(self, since: datetime) -> bool:
        """Post the hand-offs that came in after hours and are still open; False when there are none."""
        waiting = await self.helpdesk.after_hours_waiting(since)
        if not waiting or not self.settings.slack_handoff_channel:
            return False
        lines = [f"Good morning! {len(waiting)} hand-off(s) came in after hours and are waiting:"]
        lines += _hand_off_lines(waiting, detailed=False)
        await self.client.chat_postMessage(channel=self.settings.slack_handoff_channel, text="\n".join(lines))
        return True

    # -- from staff to the assistant ----------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.action("claim")(self._claim)
        app.action("resolve")(self._resolve)
        app.action("approve")(self._approve)
        app.action("deny")(self._deny)
        app.view("deny_reason")(self._deny_reason)
        app.action("gap_topic")(self._gap_topic)
        app.action("gap_ignore")(self._gap_ignore)
        app.action("gap_undo")(self._gap_undo)
        app.action("gap_new_article")(self._gap_new_article)
        app.view("gap_new_article")(self._gap_new_article_submitted)
        app.event("message")(self._message)
        app.command("/registry")(self._command)

    async def _ephemeral(self, body: dict[str, Any], text: str) -> None:
        channel, user = _where(body)[0], _user(body)
        if channel and user:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    async def _refresh_escalation(self, body: dict[str, Any], escalation_id: int) -> None:
        card = await self.helpdesk.escalation_card(escalation_id)
        channel, ts = _where(body)
        if card is not None and channel and ts:
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=f"Hand-off: {card.status}",
                blocks=escalation_blocks(card),
            )

    async def _claim(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user, escalation_id = _user(body), _row_id(action.get("value"))
        if not self.helpdesk.is_staff(user):
            await self._ephemeral(body, "Only help desk staff can claim hand-offs.")
        elif escalation_id is None:
            await self._ephemeral(body, STALE_BUTTON)
        else:
            outcome = await self.helpdesk.claim(escalation_id, user)
            await self._after_escalation(body, escalation_id, outcome.ok, outcome.message)

    async def _resolve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user, escalation_id = _user(body), _row_id(action.get("value"))
        if not self.helpdesk.is_staff(user):
            await self._ephemeral(body, "Only help desk staff can resolve hand-offs.")
        elif escalation_id is None:
            await self._ephemeral(body, STALE_BUTTON)
        else:
            outcome = await self.helpdesk.resolve(escalation_id, user)
            await self._after_escalation(body, escalation_id, outcome.ok, outcome.message)

    async def _after_escalation(
        self, body: dict[str, Any], escalation_id: int, ok: bool, message: str
    ) -> None:
        if ok:
            await self._refresh_escalation(body, escalation_id)
        else:
            await self._ephemeral(body, message)

    async def _approve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        request = _request_of(action.get("value"))
        if request is None:
            await self._ephemeral(body, STALE_BUTTON)
            return
        kind, row_id = request
        outcome = await self.helpdesk.decide(kind, row_id, user=_user(body), approve=True)
        await self._after_decision(body, kind, row_id, outcome.ok, outcome.message)

    async def _deny(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        request, trigger = _request_of(action.get("value")), body.get("trigger_id")
        if request is None or not isinstance(trigger, str):
            await self._ephemeral(body, STALE_BUTTON)
            return
        kind, row_id = request
        card = await self.helpdesk.request_card(kind, row_id)
        if card is None or not self.helpdesk.may_decide(kind, _user(body)):
            who = "the Operations Team" if kind == "audit" else "the Registry Director"
            await self._ephemeral(body, f"Only {who} can decide this request.")
            return
        if card.status not in ("submitted", "under_review"):
            await self._ephemeral(body, f"Nothing changed: this request is already {card.status}.")
            return
        channel, ts = _where(body)
        metadata = f"{kind}:{row_id}|{channel or ''}|{ts or ''}"
        await self.client.views_open(trigger_id=trigger, view=deny_modal(metadata, card.reference))

    async def _deny_reason(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        denial, reason = _denial_of(view.get("private_metadata")), _reason_of(view)
        if denial is None:
            await ack(response_action="errors", errors={"reason": STALE_FORM})
            return
        if len(reason) < 5:
            await ack(response_action="errors", errors={"reason": "Please give the member a real reason."})
            return
        if len(reason) > MAX_REASON:
            await ack(
                response_action="errors",
                errors={"reason": f"Please keep the reason under {MAX_REASON:,} characters."},
            )
            return
        await ack()
        kind, row_id, channel, ts = denial
        user = _user(body)
        outcome = await self.helpdesk.decide(kind, row_id, user=user, approve=False, note=reason)
        if outcome.ok and channel and ts:
            await self._update_request(channel, ts, kind, row_id)
        elif not outcome.ok and channel:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=outcome.message)

    async def _after_decision(
        self, body: dict[str, Any], kind: str, row_id: int, ok: bool, message: str
    ) -> None:
        if not ok:
            await self._ephemeral(body, message)
            return
        channel, ts = _where(body)
        if channel and ts:
            await self._update_request(channel, ts, kind, row_id)

    async def _update_request(self, channel: str, ts: str, kind: str, row_id: int) -> None:
        card = await self.helpdesk.request_card(kind, row_id)
        if card is not None:
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=f"{_escape(card.reference)}: {card.status}",
                blocks=request_blocks(card),
            )

    # -- the content-gap digest ---------------------------------------------------------------------------

    async def _gap_action(self, body: dict[str, Any], value: object) -> tuple[ContentGaps, int, str] | None:
        """(the gaps, the group's id, the staff member) of a click on the digest, or None after telling
        the one who clicked why nothing happens."""
        user = _user(body)
        group_id = _row_id(value)
        if self.gaps is None or not self.helpdesk.is_staff(user):
            await self._ephemeral(body, "Only help desk staff can decide about content gaps.")
            return None
        if group_id is None:
            await self._ephemeral(body, STALE_BUTTON)
            return None
        return self.gaps, group_id, user

    async def _after_gap(
        self, group_id: int, outcome: Outcome, channel: str | None, ts: str | None, user: str
    ) -> None:
        """Show the decision in the digest (drawn again from the database), or tell staff why not."""
        if not outcome.ok:
            if channel:
                await self.client.chat_postEphemeral(channel=channel, user=user, text=outcome.message)
            return
        created_at = await self.gaps.created_at(group_id) if self.gaps is not None else None
        if self.gaps is not None and created_at is not None and channel and ts:
            digest = await self.gaps.view(created_at)
            await self.client.chat_update(
                channel=channel, ts=ts, text=_digest_text(digest), blocks=digest_blocks(digest)
            )

    async def _gap_topic(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        option = action.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        group, _, topic = (value if isinstance(value, str) else "").partition(":")
        found = await self._gap_action(body, group)
        if found is not None:
            gaps, group_id, user = found
            await self._after_gap(group_id, await gaps.label(group_id, topic, user), *_where(body), user)

    async def _gap_ignore(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        found = await self._gap_action(body, action.get("value"))
        if found is not None:
            gaps, group_id, user = found
            await self._after_gap(group_id, await gaps.ignore(group_id, user), *_where(body), user)

    async def _gap_undo(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        found = await self._gap_action(body, action.get("value"))
        if found is not None:
            gaps, group_id, user = found
            await self._after_gap(group_id, await gaps.undo(group_id, user), *_where(body), user)

    async def _gap_new_article(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        found, trigger = await self._gap_action(body, action.get("value")), body.get("trigger_id")
        if found is None:
            return
        if not isinstance(trigger, str):
            await self._ephemeral(body, STALE_BUTTON)
            return
        channel, ts = _where(body)
        metadata = f"{found[1]}|{channel or ''}|{ts or ''}"
        await self.client.views_open(trigger_id=trigger, view=new_article_modal(metadata))

    async def _gap_new_article_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        parts = str(view.get("private_metadata") or "").split("|")
        group_id = _row_id(parts[0]) if len(parts) == 3 else None
        user = _user(body)
        if (
            self.gaps is None
            or group_id is None
            or not _SLACK_ID.fullmatch(parts[1])
            or not _SLACK_TS.fullmatch(parts[2])
        ):
            await ack(response_action="errors", errors={"topic": STALE_FORM})
            return
        if not self.helpdesk.is_staff(user):
            await ack(response_action="errors", errors={"topic": "Only help desk staff can decide this."})
            return
        values = ((view.get("state") or {}).get("values") or {}).get("topic") or {}
        typed = (values.get("id") or {}).get("value") if isinstance(values, dict) else None
        outcome = await self.gaps.needs_article(group_id, typed if isinstance(typed, str) else "", user)
        if not outcome.ok:
            await ack(response_action="errors", errors={"topic": outcome.message})
            return
        await ack()
        await self._after_gap(group_id, outcome, parts[1] or None, parts[2] or None, user)

    async def _message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A staff reply in a hand-off thread goes to the member; everything else is ignored.

        Bolt answers Slack only after this returns (``process_before_response``), and answers 500 when it
        raises: an event is acknowledged once what it causes is committed, and while the database is away
        Slack delivers it again. The event id is claimed in the transaction that stores its effect, so a
        redelivery of an event already handled changes nothing, and a failed attempt claims nothing.
        """
        reply = _thread_reply(event)
        if reply is None:
            return
        channel, thread, user, text = reply
        escalation = await self.helpdesk.escalation_for_thread(channel, thread)
        if escalation is None:
            return  # a thread that is not a hand-off's
        delivery = ("slack", str(body.get("event_id") or f"{channel}:{event.get('ts')}")[:128])
        if not self.helpdesk.is_staff(user):
            await self._not_staff(escalation.id, delivery, channel=channel, thread=thread, user=user)
            return
        name = await self._display_name(user)
        outcome = await self.helpdesk.reply(escalation.id, name, text, delivery=delivery)
        if not outcome.ok:
            await self.client.chat_postMessage(channel=channel, thread_ts=thread, text=outcome.message)

    async def _not_staff(
        self, escalation_id: int, delivery: tuple[str, str], *, channel: str, thread: str, user: str
    ) -> None:
        """Tell someone not on the staff list, privately, that their thread reply did not reach the member."""
        if not await self.helpdesk.first_delivery(*delivery):
            return  # Slack retried an event we already handled
        logger.warning(
            "a reply in hand-off #%d's thread came from someone not on the staff list", escalation_id
        )
        await self.client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread, text=NOT_ON_STAFF_LIST
        )

    async def _display_name(self, user: str) -> str:
        try:
            info = await self.client.users_info(user=user)
        except Exception:  # a name is nice to have; the reply must still reach the member
            return "staff"
        profile = (info.get("user") or {}).get("profile") or {}
        return str(profile.get("display_name") or profile.get("real_name") or "staff")

    async def _command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        if not self.helpdesk.is_staff(str(command.get("user_id"))):
            await respond(response_type="ephemeral", text="Only help desk staff can use /registry.")
            return
        text = command.get("text")
        words = text.split() if isinstance(text, str) else []
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        await respond(response_type="ephemeral", text=await self._answer(verb, args))

    async def _answer(self, verb: str, args: list[str]) -> str:
        """The answer to ``/registry <verb> <args>``: a usage hint when the arguments are not valid."""
        if verb == "lookup":
            if len(args) != 1 or not _REGISTRY_ID.fullmatch(args[0]):
                return "Give one Registry ID (letters and digits, up to 32): /registry lookup 10000001"
            return _lookup_text(args[0], await self.helpdesk.lookup(args[0]))
        if verb == "queue":
            return (
                "\n".join(_hand_off_lines(await self.helpdesk.queue(), detailed=True)) or "No open hand-offs."
            )
        if verb == "stats":
            days = _days_of(args)
            if days is None:
                return f"Give the days as one whole number from 1 to {MAX_STATS_DAYS}: /registry stats 30"
            return _stats_text(await self.helpdesk.stats(days))
        if verb == "gaps":
            if self.gaps is None or not self.gaps_channel:
                return "Set REGISTRY_BOT_SLACK_GAPS_CHANNEL (or the hand-off channel) to post the digest."
            digest = await self.post_digest()
            groups = len(digest.groups) if digest is not None else 0
            return f"Posted the content-gap digest ({groups} group(s)) to <#{self.gaps_channel}>."
        return USAGE


def _user(body: dict[str, Any]) -> str:
    """The Slack user who clicked or submitted (Slack always says; "" if a payload does not)."""
    user = body.get("user")
    return str(user.get("id") or "") if isinstance(user, dict) else ""


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, message ts) of the message whose button was clicked, when there is one."""
    channel, message = body.get("channel"), body.get("message")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    ts = message.get("ts") if isinstance(message, dict) else None
    return (channel_id if isinstance(channel_id, str) else None, ts if isinstance(ts, str) else None)


def _reason_of(view: dict[str, Any]) -> str:
    """The reason typed in the deny modal ("" when the view holds none)."""
    values = ((view.get("state") or {}).get("values") or {}).get("reason") or {}
    value = (values.get("text") or {}).get("value") if isinstance(values, dict) else None
    return value.strip() if isinstance(value, str) else ""


def _thread_reply(event: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(channel, thread ts, user, text) of a person's reply in a thread; None for anything else."""
    if event.get("bot_id") or event.get("subtype"):
        return None
    fields = [event.get(key) for key in ("channel", "thread_ts", "user")]
    text = event.get("text")
    if not all(isinstance(field, str) and field for field in fields):
        return None
    channel, thread, user = (str(field) for field in fields)
    return channel, thread, user, text if isinstance(text, str) else ""
