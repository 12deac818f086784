"""What happened to my audit? A verified member's audit requests and appeals, with status and due dates."""

from __future__ import annotations

from bot.flows.base import Done, Flow, FlowState
from bot.i18n import N_
from bot.messages import Reply
from bot.registry import repo
from bot.turn import Turn


class RequestStatus(Flow):
    """Show the member's audit requests and appeals."""

    name = "status"
    title = N_("Your requests")
    needs_link = True

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        assert turn.member is not None
        audits = await repo.audit_requests_of(turn.session, member_id=turn.member.id)
        appeals = await repo.appeals_of(turn.session, member_id=turn.member.id)
        # an audit approved because an appeal overturned its denial is shown with that appeal
        overturned = {a.audit_request_id: a.reference for a in appeals if a.status == "approved"}
        return Done(
            (Reply(turn.render("flows/status/list", audits=audits, appeals=appeals, overturned=overturned)),)
        )

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:  # pragma: no cover - no slots
        return []
