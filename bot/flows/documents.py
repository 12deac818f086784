"""Receiving supporting documents inside a flow: checked, stored as pending, counted against the limit.

Every file a request receives counts toward ``documents.MAX_PER_REQUEST``, the refused ones too, so a
member cannot send bad files forever. The conversation state keeps the ids of the stored documents per slot
(``documents``), their names (``names``) and how many files were refused (``refused``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot import documents
from bot.flows.base import FlowState
from bot.messages import Attachment
from bot.registry import repo
from bot.turn import Turn

REFUSALS = {
    "too_large": "flows/documents/too_large",
    "empty": "flows/documents/empty",
    "unsupported": "flows/documents/unsupported",
    "too_complex": "flows/documents/too_complex",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of a message's files: the names kept, the refusals (rendered), and whether the request
    has now received as many files as it may."""

    accepted: tuple[str, ...]
    refusals: tuple[str, ...]
    full: bool


def received(state: FlowState) -> int:
    """How many files this request has received, kept or refused."""
    held = state.data.get("documents", {})
    return sum(len(ids) for ids in held.values()) + int(state.data.get("refused", 0))


async def receive(turn: Turn, state: FlowState, slot: str) -> Receipt:
    """Check and store the attachments of this message for ``slot``, up to the request's limit."""
    accepted: list[str] = []
    refusals: list[str] = []
    for attachment in turn.inbound.attachments:
        if received(state) >= documents.MAX_PER_REQUEST:
            break
        name = documents.clean_filename(attachment.filename)
        refusal = await _keep(turn, state, slot, attachment, name)
        if refusal is None:
            accepted.append(name)
            turn.files_kept += 1
        else:
            state.data["refused"] = int(state.data.get("refused", 0)) + 1
            refusals.append(refusal)
    full = bool(turn.inbound.attachments) and received(state) >= documents.MAX_PER_REQUEST
    return Receipt(tuple(accepted), tuple(refusals), full)


async def _keep(turn: Turn, state: FlowState, slot: str, attachment: Attachment, name: str) -> str | None:
    """Store one file as pending; the refusal text instead when it cannot be used."""
    # hashing and reading an archive's directory take CPU: other members are answered meanwhile
    verdict = await asyncio.to_thread(documents.inspect, attachment.content)
    if isinstance(verdict, documents.Refused):
        return turn.render(REFUSALS[verdict.reason], name=name)
    stored = await repo.add_pending_document(
        turn.session,
        conversation_id=turn.conversation_id,
        filename=name,
        content_type=verdict.content_type,
        content=attachment.content,
        sha256=verdict.sha256,
        now=turn.now,
    )
    state.data.setdefault("documents", {}).setdefault(slot, []).append(stored.id)
    state.data.setdefault("names", []).append(name)
    return None


async def discard(turn: Turn, state: FlowState) -> None:
    """Delete the documents a cancelled request had gathered."""
    await repo.discard_pending_documents(turn.session, conversation_id=turn.conversation_id)
    for key in ("documents", "names", "refused"):
        state.data.pop(key, None)
