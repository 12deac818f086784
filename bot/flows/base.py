"""Guided conversations declared as slots with prompts and validation.

A flow reads like its conversation: for each slot, an optional ``choices_<slot>`` (the buttons), a
``validate_<slot>`` (turns the member's answer into a value, or a ``Reask`` with the reason), and the
prompt template ``flows/<name>/ask_<slot>.j2``. ``complete`` does the errand once every slot is filled.
The engine handles cancel, back, help and language switches for every flow, and saves the state (plain
data) with the turn, so a restart resumes the same step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from bot.i18n import N_
from bot.messages import Choice, Reply

if TYPE_CHECKING:
    from bot.turn import Turn

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reask:
    """The answer did not fit the slot: say why (already rendered) and ask again."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    """End the flow now with these replies (the member declined, or nothing is left to do)."""

    replies: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class Stay:
    """Keep asking the same question without repeating it (e.g. "got it, send another document")."""

    replies: tuple[Reply, ...]


@dataclass
class FlowState:
    """What a flow has gathered so far; plain data, saved in the conversation."""

    name: str
    slots: dict[str, Any] = field(default_factory=dict)
    filled: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # scratch values a flow keeps between steps
    touched_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slots": self.slots,
            "filled": self.filled,
            "data": self.data,
            "touched_at": self.touched_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FlowState:
        return cls(
            name=str(raw["name"]),
            slots=dict(raw.get("slots", {})),
            filled=list(raw.get("filled", [])),
            data=dict(raw.get("data", {})),
            touched_at=str(raw.get("touched_at", "")),
        )

    def touched(self) -> datetime | None:
        return datetime.fromisoformat(self.touched_at) if self.touched_at else None


def yes_no_choices(turn: Turn, flow: str, slot: str) -> list[Choice]:
    """Yes and No buttons for ``slot``; a typed yes or no ("sí, claro", "好的", "mejor no") presses them."""
    return [
        Choice(turn.t(N_("Yes")), f"s:{flow}:{slot}:yes", "yes"),
        Choice(turn.t(N_("No")), f"s:{flow}:{slot}:no", "no"),
    ]


def parse_yes_no(value: str) -> bool | None:
    """True, False, or None when the answer is neither (in any of our languages, as members type it)."""
    from bot.intents.answers import yes_or_no  # local import: keeps this module's import graph light
    from bot.understanding.message import Message

    return yes_or_no(Message.of(value))


class Flow:
    """Base class of every guided conversation."""

    name: ClassVar[str]
    slots: ClassVar[tuple[str, ...]] = ()
    needs_link: ClassVar[bool] = False
    #: the title members see in menus and "back to ..." notes
    title: ClassVar[str] = ""

    async def start(self, turn: Turn, state: FlowState) -> list[Reply] | Done:
        """Messages before the first question (or ``Done`` when there is nothing to do)."""
        return []

    def needed(self, slot: str, turn: Turn, state: FlowState) -> bool:
        """Whether ``slot`` must be asked, given what is known so far."""
        return True

    def next_slot(self, turn: Turn, state: FlowState) -> str | None:
        for slot in self.slots:
            if slot not in state.slots and self.needed(slot, turn, state):
                return slot
        return None

    async def choices(self, slot: str, turn: Turn, state: FlowState) -> list[Choice]:
        method: Callable[[Turn, FlowState], Awaitable[list[Choice]]] | None = getattr(
            self, f"choices_{slot.replace('-', '_')}", None
        )
        return await method(turn, state) if method else []

    async def prompt(self, slot: str, turn: Turn, state: FlowState) -> Reply:
        choices = await self.choices(slot, turn, state)
        context = await self.prompt_context(slot, turn, state)
        return Reply(turn.render(f"flows/{self.name}/ask_{slot}", **context), tuple(choices))

    async def prompt_context(self, slot: str, turn: Turn, state: FlowState) -> dict[str, Any]:
        """Extra template variables for a slot's prompt."""
        return {"state": state}

    async def validate(self, slot: str, turn: Turn, state: FlowState) -> Any:
        method: Callable[[Turn, FlowState], Awaitable[Any]] = getattr(
            self, f"validate_{slot.replace('-', '_')}"
        )
        return await method(turn, state)

    def help(self, slot: str, turn: Turn, state: FlowState) -> str:
        return turn.render("flow_help", flow_title=turn.t(self.title))

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        raise NotImplementedError

    async def discard(self, turn: Turn, state: FlowState) -> None:
        """Undo what the flow kept while it ran (it was cancelled, timed out or ended early)."""
