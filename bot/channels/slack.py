"""The staff side in Slack (slack-bolt, async): escalations, thread replies, decisions, /registry.

Everything staff do goes through ``HelpDesk``; this module only turns Slack's events into those calls and
the help desk's cards into Block Kit. HTTP mode serves ``POST /slack/events`` (signatures verified by Bolt);
Socket Mode is used instead when an app-level token is set. Slack retries an event it thinks was lost, so
each event id is processed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

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
from bot.helpdesk import EscalationCard, HelpDesk, RequestCard

logger = logging.getLogger(__name__)

# a card still unposted this long after its row was stored is one a stopped process never posted (a live
# process posts within seconds, or is still retrying a Slack rate limit)
MISSED_AFTER = timedelta(minutes=2)
# the engine's events that put a card in Slack, and the kind of card
CARD_OF_EVENT = {"escalation": "escalation", "audit_request": "audit", "appeal": "appeal"}
SUMMARY_LOOKBACK = timedelta(days=7)  # after-hours hand-offs older than this are in /registry queue anyway
MAX_SECTION = 2900  # Block Kit section text holds 3,000 characters
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "zh_Hans": "Chinese (Simplified)"}


def _clip(text: str, limit: int = MAX_SECTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack's mrkdwn needs &, < and > escaped, so a member's text cannot ping or link anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escalation_blocks(card: EscalationCard) -> list[dict[str, Any]]:
    """The hand-off message staff see: who, what, the last messages, and Claim / Resolve."""
    header = "Hand-off (after hours)" if card.after_hours else "Hand-off"
    facts = (
        f"*Member:* {_escape(card.member)}\n*Language:* {LANGUAGE_NAMES.get(card.language, card.language)}"
        f"\n*Registry:* {card.registry}\n*Status:* {card.status}"
        + (f" by <@{card.claimed_by}>" if card.claimed_by else "")
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*Question:* {_escape(card.question)}")},
        },
    ]
    if card.transcript:
        lines = "\n".join(f"_{who}:_ {_escape(text)}" for who, text in card.transcript)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(lines)}})
    if card.status != "resolved":
        buttons = [] if card.claimed_by else [_button("Claim", "claim", str(card.id), "primary")]
        buttons.append(_button("Resolve", "resolve", str(card.id)))
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def request_blocks(card: RequestCard) -> list[dict[str, Any]]:
    """An audit request or appeal waiting for a decision, with Approve / Deny."""
    title = "Qualification audit request" if card.kind == "audit" else f"Appeal of {card.audit_reference}"
    documents = ", ".join(_escape(name) for name in card.documents) or "none"
    facts = (
        f"*{card.reference}* · {_escape(card.member)}\n*Status:* {card.status}"
        f"\n*Decision due:* {card.due_at:%Y-%m-%d}\n*Documents:* {documents}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(card.text))}},
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


def deny_modal(value: str, reference: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "deny_reason",
        "private_metadata": value,
        "title": {"type": "plain_text", "text": "Deny request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": f"Why is {reference} denied? The member reads this."},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            }
        ],
    }


class SlackChannel:
    """The help desk's Slack app."""

    name = "slack"

    def __init__(self, helpdesk: HelpDesk, settings: Settings) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("REGISTRY_BOT_SLACK_BOT_TOKEN is not set")
        self.helpdesk = helpdesk
        self.settings = settings
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
        if self.settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket_mode = AsyncSocketModeHandler(
                self.app, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket_mode.connect_async()

    async def stop(self) -> None:
        for task in (self._catching_up, self._mornings):
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
            channel=channel, text=f"Hand-off: {card.question[:200]}", blocks=escalation_blocks(card)
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
                text=f"Member: {_escape(text)}",
            )

    async def post_request(self, kind: str, row_id: int) -> None:
        card = await self.helpdesk.request_card(kind, row_id)
        channel = self.settings.slack_audit_channel if kind == "audit" else self.settings.slack_appeal_channel
        if card is None or not channel:
            return
        posted = await self.client.chat_postMessage(
            channel=channel, text=f"{card.reference} needs a decision", blocks=request_blocks(card)
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
        lines += [f"• #{card.id} {_escape(card.member)}: {_escape(card.question[:150])}" for card in waiting]
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
        app.event("message")(self._message)
        app.command("/registry")(self._command)

    async def _ephemeral(self, body: dict[str, Any], text: str) -> None:
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        if channel and user:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    async def _refresh_escalation(self, body: dict[str, Any], escalation_id: int) -> None:
        card = await self.helpdesk.escalation_card(escalation_id)
        channel, message = (body.get("channel") or {}).get("id"), body.get("message") or {}
        if card is not None and channel and message.get("ts"):
            await self.client.chat_update(
                channel=channel,
                ts=message["ts"],
                text=f"Hand-off: {card.status}",
                blocks=escalation_blocks(card),
            )

    async def _claim(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        if not self.helpdesk.is_staff(user):
            await self._ephemeral(body, "Only help desk staff can claim hand-offs.")
            return
        outcome = await self.helpdesk.claim(int(action["value"]), user)
        if outcome.ok:
            await self._refresh_escalation(body, int(action["value"]))
        else:
            await self._ephemeral(body, outcome.message)

    async def _resolve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        if not self.helpdesk.is_staff(user):
            await self._ephemeral(body, "Only help desk staff can resolve hand-offs.")
            return
        outcome = await self.helpdesk.resolve(int(action["value"]), user)
        if outcome.ok:
            await self._refresh_escalation(body, int(action["value"]))
        else:
            await self._ephemeral(body, outcome.message)

    async def _approve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        kind, _, row_id = str(action["value"]).partition(":")
        outcome = await self.helpdesk.decide(kind, int(row_id), user=body["user"]["id"], approve=True)
        await self._after_decision(body, kind, int(row_id), outcome.ok, outcome.message)

    async def _deny(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        kind, _, row_id = str(action["value"]).partition(":")
        user = body["user"]["id"]
        card = await self.helpdesk.request_card(kind, int(row_id))
        if card is None or not self.helpdesk.may_decide(kind, user):
            who = "the Operations Team" if kind == "audit" else "the Registry Director"
            await self._ephemeral(body, f"Only {who} can decide this request.")
            return
        if card.status not in ("submitted", "under_review"):
            await self._ephemeral(body, f"Nothing changed: this request is already {card.status}.")
            return
        metadata = f"{action['value']}|{(body.get('channel') or {}).get('id', '')}|{body['message']['ts']}"
        await self.client.views_open(trigger_id=body["trigger_id"], view=deny_modal(metadata, card.reference))

    async def _deny_reason(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = str(view["state"]["values"]["reason"]["text"]["value"] or "").strip()
        if len(reason) < 5:
            await ack(response_action="errors", errors={"reason": "Please give the member a real reason."})
            return
        await ack()
        value, channel, ts = [*view["private_metadata"].split("|"), "", ""][:3]
        kind, _, row_id = value.partition(":")
        user = body["user"]["id"]
        outcome = await self.helpdesk.decide(kind, int(row_id), user=user, approve=False, note=reason)
        if outcome.ok and channel and ts:
            await self._update_request(channel, ts, kind, int(row_id))
        elif not outcome.ok and channel:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=outcome.message)

    async def _after_decision(
        self, body: dict[str, Any], kind: str, row_id: int, ok: bool, message: str
    ) -> None:
        if not ok:
            await self._ephemeral(body, message)
            return
        channel, ts = (body.get("channel") or {}).get("id"), (body.get("message") or {}).get("ts")
        if channel and ts:
            await self._update_request(channel, ts, kind, row_id)

    async def _update_request(self, channel: str, ts: str, kind: str, row_id: int) -> None:
        card = await self.helpdesk.request_card(kind, row_id)
        if card is not None:
            await self.client.chat_update(
                channel=channel, ts=ts, text=f"{card.reference}: {card.status}", blocks=request_blocks(card)
            )

    async def _message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """A staff reply in a hand-off thread goes to the member; everything else is ignored."""
        event_id = str(body.get("event_id") or "")
        if event.get("bot_id") or event.get("subtype") or not event.get("thread_ts"):
            return
        if event_id and not await self.helpdesk.first_delivery("slack", event_id):
            return  # Slack retried an event we already handled
        escalation = await self.helpdesk.escalation_for_thread(
            str(event.get("channel")), str(event["thread_ts"])
        )
        user = str(event.get("user") or "")
        if escalation is None or not self.helpdesk.is_staff(user):
            return
        outcome = await self.helpdesk.reply(
            escalation.id, await self._display_name(user), str(event.get("text", ""))
        )
        if not outcome.ok:
            await self.client.chat_postMessage(
                channel=str(event["channel"]), thread_ts=str(event["thread_ts"]), text=outcome.message
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
        words = str(command.get("text") or "").split()
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        if verb == "lookup" and args:
            text = await self.helpdesk.lookup(args[0])
        elif verb == "queue":
            cards = await self.helpdesk.queue()
            text = (
                "\n".join(
                    f"• #{c.id} {c.created_at:%Y-%m-%d %H:%M} {_escape(c.member)} [{c.status}]: "
                    f"{_escape(c.question[:120])}"
                    for c in cards
                )
                or "No open hand-offs."
            )
        elif verb == "stats":
            days = int(args[0]) if args and args[0].isdigit() else 7
            stats = await self.helpdesk.stats(days)
            rating = f"{stats.average_rating:.1f}" if stats.average_rating is not None else "none yet"
            gaps = "\n".join(f"  {n}× {_escape(q)}" for q, n in stats.top_unanswered) or "  none"
            text = (
                f"Last {stats.days} days: {stats.conversations} conversations, "
                f"{stats.answered_alone} answered without a person, {stats.handoffs} hand-offs, "
                f"average rating {rating}.\n"
                f"Top unanswered questions:\n{gaps}"
            )
        else:
            text = "Usage: /registry lookup <Registry ID> · /registry queue · /registry stats [days]"
        await respond(response_type="ephemeral", text=text)
