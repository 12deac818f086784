"""Receiving supporting documents inside a flow: checked, stored as pending, counted against the limit."""

from __future__ import annotations

from bot import documents
from bot.flows.base import FlowState
from bot.registry import repo
from bot.turn import Turn

REFUSALS = {
    "too_large": "flows/documents/too_large",
    "empty": "flows/documents/empty",
    "unsupported": "flows/documents/unsupported",
}


async def receive(turn: Turn, state: FlowState, slot: str) -> tuple[list[str], list[str]]:
    """Store the attachments of this message for ``slot``; returns (accepted names, refusal texts)."""
    accepted: list[str] = []
    refusals: list[str] = []
    held = state.data.setdefault("documents", {})
    for attachment in turn.inbound.attachments:
        total = sum(len(ids) for ids in held.values())
        if total >= documents.MAX_PER_REQUEST:
            refusals.append(turn.render("flows/documents/too_many", limit=documents.MAX_PER_REQUEST))
            break
        verdict = documents.inspect(attachment.content)
        if isinstance(verdict, documents.Refused):
            refusals.append(turn.render(REFUSALS[verdict.reason], name=attachment.filename or "?"))
            continue
        stored = await repo.add_pending_document(
            turn.session,
            conversation_id=turn.conversation_id,
            filename=attachment.filename[:255] or "document",
            content_type=verdict.content_type,
            content=attachment.content,
            sha256=verdict.sha256,
            now=turn.now,
        )
        held.setdefault(slot, []).append(stored.id)
        name = attachment.filename or "document"
        state.data.setdefault("names", []).append(name)
        accepted.append(name)
    return accepted, refusals


async def discard(turn: Turn, state: FlowState) -> None:
    """Delete the documents a cancelled request had gathered."""
    await repo.discard_pending_documents(turn.session, conversation_id=turn.conversation_id)
    state.data.pop("documents", None)
    state.data.pop("names", None)
