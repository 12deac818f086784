"""Withdraw from a training: the member's upcoming enrollments, the sponsor's rules, then confirmation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rapidfuzz import fuzz, process

from bot.flows.base import Done, Flow, FlowState, Reask, parse_yes_no, yes_no_choices
from bot.i18n import N_, fmt_datetime
from bot.messages import Choice, Reply
from bot.registry import repo
from bot.registry.models import Enrollment
from bot.turn import Turn


def deadline(enrollment: Enrollment) -> datetime:
    """The last moment the member may withdraw themselves: the window's days before the start."""
    training = enrollment.training
    return training.starts_at - timedelta(days=training.sponsor.self_withdrawal_window_days)


def describe(enrollment: Enrollment, turn: Turn) -> dict[str, Any]:
    training = enrollment.training
    return {
        "title": training.title,
        "when": fmt_datetime(training.starts_at, turn.lang, turn.profile.timezone),
        "sponsor": training.sponsor,
        "location": training.location,
    }


class WithdrawTraining(Flow):
    """Withdraw a verified member from an upcoming training, within the sponsor's rules."""

    name = "withdraw-training"
    title = N_("Withdraw from a training")
    needs_link = True
    slots = ("enrollment", "confirm")

    async def _upcoming(self, turn: Turn) -> list[Enrollment]:
        assert turn.member is not None
        return await repo.upcoming_enrollments(turn.session, member_id=turn.member.id, now=turn.now)

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        if not await self._upcoming(turn):
            return Done((Reply(turn.render("flows/withdraw-training/none")),))
        return []

    async def choices_enrollment(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [
            Choice(
                turn.render("flows/withdraw-training/choice", **describe(e, turn)),
                f"s:{self.name}:enrollment:{e.id}",
            )
            for e in await self._upcoming(turn)
        ]

    async def validate_enrollment(self, turn: Turn, state: FlowState) -> int | Reask | Done:
        assert turn.member is not None
        upcoming = await self._upcoming(turn)
        chosen: Enrollment | None = None
        answer = turn.answer.strip()
        if answer.isdigit():
            chosen = next((e for e in upcoming if e.id == int(answer)), None)
            if chosen is None and 1 <= int(answer) <= len(upcoming) and turn.inbound.payload is None:
                chosen = upcoming[int(answer) - 1]
            if chosen is None and turn.inbound.payload is not None:
                existing = await repo.enrollment_of(
                    turn.session, member_id=turn.member.id, enrollment_id=int(answer)
                )
                if existing is not None and existing.status == "withdrawn":
                    return Reask(
                        turn.render("flows/withdraw-training/already", title=existing.training.title)
                    )
        elif answer:
            titles = {e.id: e.training.title for e in upcoming}
            found = process.extractOne(answer, titles, scorer=fuzz.WRatio, score_cutoff=80)
            chosen = next((e for e in upcoming if found and e.id == found[2]), None)
        if chosen is None:
            return Reask(turn.render("flows/withdraw-training/pick_one"))
        sponsor = chosen.training.sponsor
        if not sponsor.allows_self_withdrawal:
            return Done((self._refusal(turn, chosen, "not_allowed"),))
        if turn.now > deadline(chosen):
            return Done((self._refusal(turn, chosen, "window_closed"),))
        return chosen.id

    def _refusal(self, turn: Turn, enrollment: Enrollment, why: str) -> Reply:
        text = turn.render(
            f"flows/withdraw-training/{why}",
            **describe(enrollment, turn),
            closed_on=fmt_datetime(deadline(enrollment), turn.lang, turn.profile.timezone),
            days=enrollment.training.sponsor.self_withdrawal_window_days,
        )
        return Reply(text, (Choice(turn.t(N_("Another training")), f"flow:{self.name}"),))

    async def choices_confirm(self, turn: Turn, state: FlowState) -> list[Choice]:
        return yes_no_choices(turn, self.name, "confirm")

    async def prompt_context(self, slot: str, turn: Turn, state: FlowState) -> dict[str, Any]:
        if slot != "confirm":
            return {}
        assert turn.member is not None
        enrollment = await repo.enrollment_of(
            turn.session, member_id=turn.member.id, enrollment_id=state.slots["enrollment"]
        )
        assert enrollment is not None
        return describe(enrollment, turn)

    async def validate_confirm(self, turn: Turn, state: FlowState) -> bool | Reask | Done:
        answer = parse_yes_no(turn.answer)
        if answer is None:
            return Reask(turn.render("yes_or_no"))
        if not answer:
            return Done((Reply(turn.render("flows/withdraw-training/kept")),))
        return True

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        assert turn.member is not None
        enrollment = await repo.enrollment_of(
            turn.session, member_id=turn.member.id, enrollment_id=state.slots["enrollment"]
        )
        assert enrollment is not None
        if not await repo.withdraw(
            turn.session, enrollment_id=enrollment.id, channel=turn.channel, now=turn.now
        ):
            return [Reply(turn.render("flows/withdraw-training/already", title=enrollment.training.title))]
        more = (Choice(turn.t(N_("Withdraw from another training")), f"flow:{self.name}"),)
        return [Reply(turn.render("flows/withdraw-training/done", **describe(enrollment, turn)), more)]
