"""Appeal a denied audit: only the member's denied audits, a reason, optional documents, confirmation."""

from __future__ import annotations

from typing import Any

from bot import text
from bot.flows.audit import DocumentSlots
from bot.flows.base import Done, Flow, FlowState, Reask
from bot.i18n import N_
from bot.messages import Choice, Reply
from bot.registry import repo
from bot.registry.models import AuditRequest
from bot.turn import Turn

MIN_REASON_CHARS = 20


class Appeal(DocumentSlots, Flow):
    """File an appeal of a denied qualification audit, decided by the Registry Director."""

    name = "appeal"
    title = N_("Appeal a denied audit")
    needs_link = True
    slots = ("audit", "reason", "documents", "confirm")

    async def _appealable(self, turn: Turn) -> list[AuditRequest]:
        assert turn.member is not None
        return await repo.appealable_audits(turn.session, member_id=turn.member.id)

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        assert turn.member is not None
        if await self._appealable(turn):
            return []
        audits = await repo.audit_requests_of(turn.session, member_id=turn.member.id)
        return Done((Reply(turn.render("flows/appeal/nothing_to_appeal", audits=audits)),))

    async def choices_audit(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [
            Choice(turn.render("flows/appeal/choice", audit=audit), f"s:{self.name}:audit:{audit.id}")
            for audit in await self._appealable(turn)
        ]

    async def validate_audit(self, turn: Turn, state: FlowState) -> int | Reask:
        audits = await self._appealable(turn)
        answer = turn.answer.strip()
        for audit in audits:
            if answer == str(audit.id) or text.normalize(answer) == text.normalize(audit.reference):
                return audit.id
        if turn.inbound.payload is None and answer.isdigit() and 1 <= int(answer) <= len(audits):
            return audits[int(answer) - 1].id
        return Reask(turn.render("flows/appeal/pick_audit"))

    async def validate_reason(self, turn: Turn, state: FlowState) -> str | Reask:
        reason = turn.answer.strip()
        if len(reason) < MIN_REASON_CHARS and not (text.has_cjk(reason) and text.cjk_count(reason) >= 8):
            return Reask(turn.render("flows/appeal/reason_more"))
        return reason[:4000]

    async def prompt_context(self, slot: str, turn: Turn, state: FlowState) -> dict[str, Any]:
        audit = next((a for a in await self._appealable(turn) if a.id == state.slots.get("audit")), None)
        return {"state": state, "audit": audit, "documents": state.data.get("names", [])}

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        member = turn.member
        assert member is not None
        audit = next((a for a in await self._appealable(turn) if a.id == state.slots["audit"]), None)
        if audit is None:  # appealed meanwhile, from another chat
            await self.discard(turn, state)
            return [Reply(turn.render("flows/appeal/already"))]
        appeal = await repo.create_appeal(
            turn.session,
            member_id=member.id,
            audit_request_id=audit.id,
            reason=state.slots["reason"],
            channel=turn.channel,
            conversation_id=turn.conversation_id,
            now=turn.now,
        )
        turn.email(
            "appeal_submitted",
            member.email,
            member=member,
            appeal=appeal,
            audit=audit,
            documents=state.data.get("names", []),
        )
        turn.events.append(("appeal", appeal.id))
        return [Reply(turn.render("flows/appeal/submitted", appeal=appeal, audit=audit))]
