"""Every guided conversation, by name. Adding a flow: its module, its templates, one line here."""

from __future__ import annotations

from bot.flows.base import Done, Flow, FlowState, Reask
from bot.flows.handoff import Handoff
from bot.flows.language import ChooseLanguage

FLOWS: dict[str, Flow] = {flow.name: flow for flow in (ChooseLanguage(), Handoff())}

__all__ = ["FLOWS", "Done", "Flow", "FlowState", "Reask"]
