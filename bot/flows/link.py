"""Linking a chat account to a registry member: Registry ID, the e-mail on file, then a one-time code.

The answer is the same whether or not the details match a member, so nobody can find out who is one.
Codes are six digits, valid ten minutes, five tries each, stored only as salted hashes. Limits belong to
the member, not the chat (design.md, Identity): they are counted on the Registry ID typed, in every chat
and whether or not it belongs to anyone, so they give nothing away either. At the code step a member may
ask for a new code or correct the e-mail address; full-width digits count like any others.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.flows.base import Done, Flow, FlowState, Reask, Stay
from bot.i18n import N_
from bot.intents.requests import asks_new_code, asks_other_email
from bot.messages import Choice, Reply
from bot.registry import repo
from bot.registry.models import VerificationCode
from bot.turn import Turn
from bot.understanding.message import Message

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
# at most 3 code e-mails per member an hour and 10 a day; after 5 wrong codes the member waits 15 minutes
CODES_PER_HOUR, CODES_PER_DAY = 3, 10
WRONG_CODES, WRONG_CODE_PAUSE = 5, timedelta(minutes=15)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# one chat trying many Registry IDs is paused too
CHAT_CODES_PER_HOUR = 3
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_IN_TEXT = re.compile(r"[^@\s<>(),;:]+@[^@\s<>(),;:]+\.[^@\s<>(),;:]+")
RESEND, OTHER_EMAIL = "~resend", "~email"  # the code step's buttons
SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")


def hash_code(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + code).encode()).hexdigest()}"


def code_matches(code: str, stored: str) -> bool:
    salt, _, _digest = stored.partition("$")
    return hmac.compare_digest(hash_code(code, salt), stored)


def clean_email(value: str) -> str | None:
    candidate = value.strip().strip("<>.,;").lower()
    return candidate if EMAIL.match(candidate) and len(candidate) <= 254 else None


def subject(registry: str, registry_id: str) -> str:
    """What the limits are counted on: the registry and the Registry ID typed (a digest, not the ID)."""
    return hashlib.sha256(f"{registry}:{registry_id}".encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Pause:
    """Verification is paused until ``until``; ``why`` names the template that says so."""

    until: datetime
    why: str


def _sends_pause(
    codes: list[VerificationCode], now: datetime, limit: int, window: timedelta
) -> datetime | None:
    recent = sorted(code.created_at for code in codes if code.created_at > now - window)
    return recent[-limit] + window if len(recent) >= limit else None


async def pause(turn: Turn, registry_id: str | None) -> Pause | None:
    """Whether verification must wait: too many codes or wrong codes for this Registry ID (in any chat),
    or too many codes asked from this chat; and until when."""
    now = turn.now
    if registry_id is not None:
        codes = await repo.codes_for_subject(
            turn.session, subject=subject(turn.profile.key, registry_id), since=now - DAY
        )
        failed = [
            c for c in codes if c.used_at is None and c.failed_at and c.failed_at > now - WRONG_CODE_PAUSE
        ]
        if sum(code.attempts for code in failed) >= WRONG_CODES:
            return Pause(max(code.failed_at for code in failed if code.failed_at) + WRONG_CODE_PAUSE, "wrong")
        until = _sends_pause(codes, now, CODES_PER_HOUR, HOUR) or _sends_pause(codes, now, CODES_PER_DAY, DAY)
        if until is not None:
            return Pause(until, "codes")
    chat = await repo.codes_since(turn.session, channel=turn.channel, user_id=turn.user_id, since=now - HOUR)
    until = _sends_pause(chat, now, CHAT_CODES_PER_HOUR, HOUR)
    return Pause(until, "codes") if until is not None else None


def paused(turn: Turn, why: Pause) -> Reply:
    return Reply(turn.render("flows/link/locked", until=why.until, wrong=why.why == "wrong"))


class LinkAccount(Flow):
    """Verify that the person in this chat is a registry member, so their record may be shown or changed."""

    name = "link"
    title = N_("Verify your Registry profile")
    slots = ("registry_id", "email", "code")

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        if turn.member is not None:
            return Done((Reply(turn.render("flows/link/already", member=turn.member)),))
        held = await pause(turn, None)
        if held is not None:
            return Done((paused(turn, held),))
        return [Reply(turn.render("flows/link/intro"))]

    async def validate_registry_id(self, turn: Turn, state: FlowState) -> str | Reask:
        digits = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", turn.answer))
        if not digits.isdigit() or not 5 <= len(digits) <= 12:
            return Reask(turn.render("flows/link/bad_registry_id"))
        return digits

    async def validate_email(self, turn: Turn, state: FlowState) -> str | Reask | Done:
        email = clean_email(unicodedata.normalize("NFKC", turn.answer))
        if email is None:
            return Reask(turn.render("flows/link/bad_email"))
        held = await self._send_code(turn, state.slots["registry_id"], email)
        return Done((paused(turn, held),)) if held is not None else email

    async def _send_code(self, turn: Turn, registry_id: str, email: str) -> Pause | None:
        """A new code for ``registry_id``, e-mailed when ``email`` is the one on file; or the pause that
        stops it. Stored either way, so the limits count the same for members and non-members."""
        held = await pause(turn, registry_id)
        if held is not None:
            return held
        member = await repo.member_by_registry_id(
            turn.session, registry=turn.profile.key, registry_id=registry_id
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
            subject=subject(turn.profile.key, registry_id),
        )
        if member is not None and matches:
            turn.email(
                "verification_code",
                member.email,
                code=code,
                first_name=member.first_name,
                minutes=int(CODE_TTL.total_seconds() // 60),
            )
        return None

    async def choices_code(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [
            Choice(turn.t(N_("Send me a new code")), f"s:{self.name}:code:{RESEND}"),
            Choice(turn.t(N_("Use another e-mail address")), f"s:{self.name}:code:{OTHER_EMAIL}"),
        ]

    async def validate_code(self, turn: Turn, state: FlowState) -> str | Reask | Stay | Done:
        typed = unicodedata.normalize("NFKC", turn.answer)  # full-width digits are digits
        codes = SIX_DIGITS.findall(EMAIL_IN_TEXT.sub(" ", typed))
        if typed not in (RESEND, OTHER_EMAIL) and len(codes) == 1:  # "my code is 606994" is a code first
            return await self._check(turn, state, codes[0])
        message = Message.of(typed)
        other = EMAIL_IN_TEXT.search(typed)
        address = clean_email(other.group(0)) if other is not None else None
        if address is not None:
            return await self._resend(turn, state, address, "flows/link/new_address")
        if typed == OTHER_EMAIL or asks_other_email(message):
            state.slots.pop("email", None)
            state.filled.remove("email")
            return Stay((await self.prompt("email", turn, state),))
        if typed == RESEND or asks_new_code(message):
            return await self._resend(turn, state, state.slots["email"], "flows/link/resent")
        return Reask(turn.render("flows/link/bad_code"))

    async def _check(self, turn: Turn, state: FlowState, typed: str) -> str | Reask | Done:
        """Compare a typed code with the latest; a paused member is not let in, even with the right code."""
        code = await repo.latest_code(turn.session, channel=turn.channel, user_id=turn.user_id)
        if code is None or code.used_at is not None or code.expires_at <= turn.now:
            return Done((Reply(turn.render("flows/link/expired")),))
        held = await pause(turn, state.slots["registry_id"])
        if held is not None and held.why == "wrong":
            return Done((paused(turn, held),))
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
        code.failed_at = turn.now
        await turn.session.flush()
        held = await pause(turn, state.slots["registry_id"])
        if held is not None and held.why == "wrong":
            return Done((paused(turn, held),))
        left = MAX_TRIES - code.attempts
        if left <= 0:
            return Done((Reply(turn.render("flows/link/too_many")),))
        return Reask(turn.render("flows/link/wrong_code", left=left))

    async def _resend(self, turn: Turn, state: FlowState, email: str, template: str) -> Stay | Done:
        held = await self._send_code(turn, state.slots["registry_id"], email)
        if held is not None:
            return Done((paused(turn, held),))
        state.slots["email"] = email
        return Stay((Reply(turn.render(template)), await self.prompt("code", turn, state)))

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        return [Reply(turn.render("flows/link/linked", member=turn.member))]
