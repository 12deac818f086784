"""Handing the conversation to help desk staff, with what they need and an honest word on when."""

from __future__ import annotations

from datetime import timedelta

from bot.flows.base import Flow, FlowState, Reask
from bot.i18n import N_
from bot.messages import Reply
from bot.registry import repo
from bot.turn import Turn

MIN_QUESTION = 3
# hand-offs one client address (every web visitor from it) may ask for in an hour: a new visitor is free,
# and each hand-off puts a card in front of the help desk
HANDOFFS_PER_CLIENT = (5, timedelta(hours=1))


class Handoff(Flow):
    """Ask what the member needs, open an escalation for staff, and say when a person will answer."""

    name = "handoff"
    title = N_("Talk to a person")
    slots = ("question",)

    async def validate_question(self, turn: Turn, state: FlowState) -> str | Reask:
        question = turn.answer.strip()
        if len(question) < MIN_QUESTION:
            return Reask(turn.render("flows/handoff/too_short"))
        return question

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        client = turn.inbound.client
        if client:
            until = await repo.over_limit(
                turn.connection, kind="handoffs", value=client, limits=(HANDOFFS_PER_CLIENT,), now=turn.now
            )
            if until is not None:
                return [Reply(turn.render("flows/handoff/busy", until=until))]
        hours = turn.hours
        is_open = bool(hours and hours.is_open(turn.now))
        escalation = await repo.open_escalation(
            turn.session,
            conversation_id=turn.conversation_id,
            member_id=turn.member.id if turn.member else None,
            registry=turn.profile.key,
            language=turn.lang,
            question=state.slots["question"],
            after_hours=not is_open,
            now=turn.now,
        )
        turn.events.append(("escalation", escalation.id))  # staff are told once the turn is committed
        turn.memory["escalation"] = escalation.id  # while it is open, a person may take the conversation
        next_opening = hours.next_opening(turn.now) if hours and not is_open else None
        return [
            Reply(
                turn.render(
                    "flows/handoff/queued",
                    is_open=is_open,
                    hours_known=bool(hours and hours.known),
                    next_opening=next_opening,
                )
            )
        ]
