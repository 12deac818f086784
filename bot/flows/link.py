"""Linking a chat account to a registry member: Registry ID, the e-mail on file, then a one-time code.

The answer is the same whether or not the details match a member, so nobody can find out who is one.
Codes are six digits, valid ten minutes, five tries each, stored only as salted hashes; too many codes or
failures in an hour lock the chat account for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from bot.flows.base import Done, Flow, FlowState, Reask
from bot.i18n import N_
from bot.messages import Reply
from bot.registry import repo
from bot.turn import Turn

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
LOCK_WINDOW = timedelta(hours=1)
MAX_CODES_PER_WINDOW = 3
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def hash_code(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + code).encode()).hexdigest()}"


def code_matches(code: str, stored: str) -> bool:
    salt, _, _digest = stored.partition("$")
    return hmac.compare_digest(hash_code(code, salt), stored)


def clean_email(value: str) -> str | None:
    candidate = value.strip().strip("<>.,;").lower()
    return candidate if EMAIL.match(candidate) and len(candidate) <= 254 else None


async def locked(turn: Turn) -> bool:
    """Whether this chat account asked for too many codes, or failed too many, within the last hour."""
    recent = await repo.codes_since(
        turn.session, channel=turn.channel, user_id=turn.user_id, since=turn.now - LOCK_WINDOW
    )
    exhausted = [code for code in recent if code.attempts >= MAX_TRIES and code.used_at is None]
    return len(recent) >= MAX_CODES_PER_WINDOW or len(exhausted) >= 2


class LinkAccount(Flow):
    """Verify that the person in this chat is a registry member, so their record may be shown or changed."""

    name = "link"
    title = N_("Verify your Registry profile")
    slots = ("registry_id", "email", "code")

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        if turn.member is not None:
            return Done((Reply(turn.render("flows/link/already", member=turn.member)),))
        if await locked(turn):
            return Done((Reply(turn.render("flows/link/locked")),))
        return [Reply(turn.render("flows/link/intro"))]

    async def validate_registry_id(self, turn: Turn, state: FlowState) -> str | Reask:
        digits = re.sub(r"[\s-]", "", turn.answer)
        if not digits.isdigit() or not 5 <= len(digits) <= 12:
            return Reask(turn.render("flows/link/bad_registry_id"))
        return digits

    async def validate_email(self, turn: Turn, state: FlowState) -> str | Reask | Done:
        email = clean_email(turn.answer)
        if email is None:
            return Reask(turn.render("flows/link/bad_email"))
        if await locked(turn):
            return Done((Reply(turn.render("flows/link/locked")),))
        member = await repo.member_by_registry_id(
            turn.session, registry=turn.profile.key, registry_id=state.slots["registry_id"]
        )
        matches = member is not None and member.email.lower() == email
        code = f"{secrets.randbelow(10**6):06d}"
        await repo.add_code(
            turn.session,
            channel=turn.channel,
            user_id=turn.user_id,
            member_id=member.id if member and matches else None,
            code_hash=hash_code(code),
            now=turn.now,
            ttl=CODE_TTL,
        )
        if member is not None and matches:
            turn.email(
                "verification_code",
                member.email,
                code=code,
                first_name=member.first_name,
                minutes=int(CODE_TTL.total_seconds() // 60),
            )
        return email

    async def validate_code(self, turn: Turn, state: FlowState) -> str | Reask | Done:
        typed = re.sub(r"\s", "", turn.answer)
        code = await repo.latest_code(turn.session, channel=turn.channel, user_id=turn.user_id)
        if code is None or code.used_at is not None or code.expires_at <= turn.now:
            return Done((Reply(turn.render("flows/link/expired")),))
        if not (typed.isdigit() and len(typed) == 6):
            return Reask(turn.render("flows/link/bad_code"))
        code.attempts += 1
        if code.member_id is not None and code_matches(typed, code.code_hash):
            code.used_at = turn.now
            await repo.link_chat(
                turn.session,
                channel=turn.channel,
                user_id=turn.user_id,
                member_id=code.member_id,
                now=turn.now,
            )
            turn.member = await repo.linked_member(turn.session, channel=turn.channel, user_id=turn.user_id)
            return "verified"
        left = MAX_TRIES - code.attempts
        if left <= 0:
            return Done((Reply(turn.render("flows/link/too_many")),))
        return Reask(turn.render("flows/link/wrong_code", left=left))

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        return [Reply(turn.render("flows/link/linked", member=turn.member))]
