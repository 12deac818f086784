"""Qualification audit request: the policy first, then what to review, the documents, and confirmation."""

from __future__ import annotations

from typing import Any, ClassVar

from bot import text
from bot.documents import MAX_PER_REQUEST
from bot.flows import documents
from bot.flows.base import Done, Flow, FlowState, Reask, Stay, parse_yes_no, yes_no_choices
from bot.i18n import N_
from bot.messages import Choice, Reply
from bot.registry import repo
from bot.turn import Turn

CATEGORIES = {
    "education": N_("Education (college courses, degrees)"),
    "training": N_("Training (workshops, professional development hours)"),
    "employment": N_("Employment (jobs, experience)"),
    "other": N_("Something else"),
}
PROOFS = {
    "syllabus": N_("A course description and a syllabus"),
    "letter": N_("A letter from the college or university"),
    "none": N_("I don't have these yet"),
}
MIN_DESCRIPTION_CHARS = 25
MIN_DESCRIPTION_WORDS = 5
DONE_WORDS = frozenset(
    "done listo ya terminado terminé termine finish finished no none ninguno 完成 好了 没有 就这些".split()
)


def _pick(turn: Turn, options: dict[str, str]) -> str | None:
    """The key of the option the member pressed or typed (its key, its label, or its number)."""
    answer = turn.answer.strip()
    if answer in options:
        return answer
    keys = list(options)
    if answer.isdigit() and 1 <= int(answer) <= len(keys):
        return keys[int(answer) - 1]
    typed = text.normalize(answer)
    for key, label in options.items():
        if typed and (typed == text.normalize(turn.t(label)) or typed == text.normalize(label)):
            return key
    for key, label in options.items():
        first = text.normalize(turn.t(label)).split(" ")[0]
        if typed and (typed.startswith(first) or first.startswith(typed)) and len(typed) >= 4:
            return key
    return None


def finished(answer: str) -> bool:
    normalized = text.normalize(answer)
    return normalized in DONE_WORDS or answer.strip() in DONE_WORDS


class DocumentSlots:
    """What the audit request and the appeal share: document slots, and the confirmation before filing.

    The final ``documents`` slot takes any number of files until the member is done; ``confirm`` files the
    request, or discards the documents and ends with ``flows/<name>/not_sent``.
    """

    name: ClassVar[str]

    async def take_documents(self, turn: Turn, state: FlowState, slot: str, *, required: bool) -> Any:
        receipt = await documents.receive(turn, state, slot)
        held = state.data.get("documents", {}).get(slot, [])
        if receipt.accepted and required:
            return held
        if receipt.accepted or receipt.refusals or receipt.full:
            return Stay(self.receipt_replies(turn, receipt, slot, required=required))
        if not required and finished(turn.answer):
            return held
        return Reask(turn.render("flows/documents/send_file"))

    def receipt_replies(
        self, turn: Turn, receipt: documents.Receipt, slot: str, *, required: bool
    ) -> tuple[Reply, ...]:
        """The refusals, what was kept, and, once the request is full, that no more files are taken."""
        texts = list(receipt.refusals)
        if receipt.accepted:
            template = "received_last" if receipt.full else "received"
            texts.append(turn.render(f"flows/documents/{template}", names=list(receipt.accepted)))
        if receipt.full:
            full = "too_many_required" if required else "too_many"
            texts.append(turn.render(f"flows/documents/{full}", limit=MAX_PER_REQUEST))
        choices = () if required else self.done_choice(turn, slot)
        return (*(Reply(line) for line in texts[:-1]), Reply(texts[-1], choices))

    def done_choice(self, turn: Turn, slot: str) -> tuple[Choice, ...]:
        return (Choice(turn.t(N_("Done")), f"s:{self.name}:{slot}:done"),)

    async def discard(self, turn: Turn, state: FlowState) -> None:
        await documents.discard(turn, state)

    async def choices_documents(self, turn: Turn, state: FlowState) -> list[Choice]:
        return list(self.done_choice(turn, "documents"))

    async def validate_documents(self, turn: Turn, state: FlowState) -> Any:
        return await self.take_documents(turn, state, "documents", required=False)

    async def choices_confirm(self, turn: Turn, state: FlowState) -> list[Choice]:
        return yes_no_choices(turn, self.name, "confirm")

    async def validate_confirm(self, turn: Turn, state: FlowState) -> bool | Reask | Done:
        answer = parse_yes_no(turn.answer)
        if answer is None:
            return Reask(turn.render("yes_or_no"))
        if not answer:
            await self.discard(turn, state)
            return Done((Reply(turn.render(f"flows/{self.name}/not_sent")),))
        return True


class AuditRequest(DocumentSlots, Flow):
    """File a qualification audit request for a verified member."""

    name = "audit-request"
    title = N_("Qualification audit request")
    needs_link = True
    slots = (
        "proceed",
        "category",
        "description",
        "coursework",
        "proof",
        "course_description",
        "syllabus",
        "letter",
        "documents",
        "confirm",
    )

    def needed(self, slot: str, turn: Turn, state: FlowState) -> bool:
        coursework = state.slots.get("coursework") is True
        proof = state.slots.get("proof")
        if slot == "coursework":
            return state.slots.get("category") in ("education", "other")
        if slot == "proof":
            return coursework
        if slot in ("course_description", "syllabus"):
            return coursework and proof == "syllabus"
        if slot == "letter":
            return coursework and proof == "letter"
        return True

    async def choices_proceed(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [
            Choice(turn.t(N_("Continue with the request")), f"s:{self.name}:proceed:yes"),
            Choice(turn.t(N_("Talk to a person first")), "flow:handoff"),
        ]

    async def validate_proceed(self, turn: Turn, state: FlowState) -> bool | Reask | Done:
        answer = parse_yes_no(turn.answer)
        if answer is None and text.normalize(turn.answer) in ("continue", "continuar", "继续"):
            answer = True
        if answer is None:
            return Reask(turn.render("yes_or_no"))
        if not answer:
            return Done((Reply(turn.render("flows/audit-request/not_now")),))
        return True

    async def choices_category(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [Choice(turn.t(label), f"s:{self.name}:category:{key}") for key, label in CATEGORIES.items()]

    async def validate_category(self, turn: Turn, state: FlowState) -> str | Reask:
        return _pick(turn, CATEGORIES) or Reask(turn.render("pick_a_button"))

    async def validate_description(self, turn: Turn, state: FlowState) -> str | Reask:
        description = turn.answer.strip()
        if len(description) < MIN_DESCRIPTION_CHARS or (
            len(text.words(description)) < MIN_DESCRIPTION_WORDS
            and not (text.has_cjk(description) and text.cjk_count(description) >= 10)
        ):
            return Reask(turn.render("flows/audit-request/describe_more"))
        return description[:4000]

    async def choices_coursework(self, turn: Turn, state: FlowState) -> list[Choice]:
        return yes_no_choices(turn, self.name, "coursework")

    async def validate_coursework(self, turn: Turn, state: FlowState) -> bool | Reask:
        answer = parse_yes_no(turn.answer)
        return Reask(turn.render("yes_or_no")) if answer is None else answer

    async def choices_proof(self, turn: Turn, state: FlowState) -> list[Choice]:
        return [Choice(turn.t(label), f"s:{self.name}:proof:{key}") for key, label in PROOFS.items()]

    async def validate_proof(self, turn: Turn, state: FlowState) -> str | Reask | Done:
        if turn.inbound.attachments:
            return Reask(turn.render("flows/audit-request/proof_first"))
        proof = _pick(turn, PROOFS)
        if proof is None:
            return Reask(turn.render("pick_a_button"))
        if proof == "none":
            await self.discard(turn, state)
            return Done((Reply(turn.render("flows/audit-request/proof_missing")),))
        return proof

    async def validate_course_description(self, turn: Turn, state: FlowState) -> Any:
        return await self.take_documents(turn, state, "course_description", required=True)

    async def validate_syllabus(self, turn: Turn, state: FlowState) -> Any:
        return await self.take_documents(turn, state, "syllabus", required=True)

    async def validate_letter(self, turn: Turn, state: FlowState) -> Any:
        return await self.take_documents(turn, state, "letter", required=True)

    async def prompt_context(self, slot: str, turn: Turn, state: FlowState) -> dict[str, Any]:
        category = state.slots.get("category")
        return {
            "state": state,
            "category": turn.t(CATEGORIES[category]) if category in CATEGORIES else "",
            "documents": state.data.get("names", []),
        }

    async def complete(self, turn: Turn, state: FlowState) -> list[Reply]:
        member = turn.member
        assert member is not None
        audit = await repo.create_audit_request(
            turn.session,
            member_id=member.id,
            category=state.slots["category"],
            description=state.slots["description"],
            involves_coursework=state.slots.get("coursework") is True,
            channel=turn.channel,
            conversation_id=turn.conversation_id,
            now=turn.now,
        )
        turn.email(
            "audit_submitted",
            member.email,
            member=member,
            audit=audit,
            category=turn.t(CATEGORIES[audit.category]),
            documents=state.data.get("names", []),
        )
        turn.events.append(("audit_request", audit.id))
        return [Reply(turn.render("flows/audit-request/submitted", audit=audit))]
