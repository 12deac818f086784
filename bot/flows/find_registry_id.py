"""Find my Registry ID: e-mailed to the address on file, never shown in chat to an unverified account."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.flows.base import Done, Flow, FlowState, Reask
from bot.flows.link import clean_email
from bot.i18n import N_
from bot.messages import Reply
from bot.registry import repo
from bot.turn import Turn

MAX_SENDS_PER_HOUR = 3  # from one chat
# to one address, whichever chat asks and whether or not the address is on file (design.md, Identity)
SENDS_PER_ADDRESS = ((1, timedelta(minutes=10)), (5, timedelta(days=1)))


class FindRegistryId(Flow):
    """E-mail the Registry ID to the address on file; the reply is the same whether or not it is known."""

    name = "find-registry-id"
    title = N_("Find your Registry ID")
    slots = ("email",)

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        if turn.member is not None:  # a verified member may see their own ID
            return Done((Reply(turn.render("flows/find-registry-id/yours", member=turn.member)),))
        return []

    async def validate_email(self, turn: Turn, state: FlowState) -> str | Reask | Done:
        email = clean_email(turn.answer)
        if email is None:
            return Reask(turn.render("flows/link/bad_email"))
        cutoff = turn.now - timedelta(hours=1)
        sends = [s for s in turn.memory.get("registry_id_sends", []) if datetime.fromisoformat(s) > cutoff]
        if len(sends) >= MAX_SENDS_PER_HOUR:
            return Done((Reply(turn.render("flows/find-registry-id/slow_down", until=None)),))
        until = await repo.over_limit(
            turn.connection, kind="registry-id-mail", value=email, limits=SENDS_PER_ADDRESS, now=turn.now
        )
        if until is not None:
            return Done((Reply(turn.render("flows/find-registry-id/slow_down", until=until)),))
        turn.memory["registry_id_sends"] = [*sends, turn.now.isoformat()]
        for member in await repo.members_by_email(turn.session, registry=turn.profile.key, email=email):
            turn.email("registry_id", member.email, member=member)
        return email

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        return [Reply(turn.render("flows/find-registry-id/sent"))]
