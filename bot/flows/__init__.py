"""Every guided conversation, by name. Adding a flow: its module, its templates, one line here."""

from __future__ import annotations

from bot.flows.appeal import Appeal
from bot.flows.audit import AuditRequest
from bot.flows.base import Done, Flow, FlowState, Reask, Stay
from bot.flows.find_registry_id import FindRegistryId
from bot.flows.handoff import Handoff
from bot.flows.language import ChooseLanguage
from bot.flows.link import LinkAccount
from bot.flows.status import RequestStatus
from bot.flows.withdraw import WithdrawTraining

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        ChooseLanguage(),
        Handoff(),
        LinkAccount(),
        FindRegistryId(),
        WithdrawTraining(),
        AuditRequest(),
        Appeal(),
        RequestStatus(),
    )
}

__all__ = ["FLOWS", "Done", "Flow", "FlowState", "Reask", "Stay"]
