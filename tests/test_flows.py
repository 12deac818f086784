"""Guided flows on the demo data: identity, Registry ID, withdrawal, audit request, appeal, status."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.messages import Attachment
from bot.registry.models import (
    Appeal,
    AuditRequest,
    ChatLink,
    Document,
    Enrollment,
    OutboxMessage,
    Training,
)
from tests.conftest import Clock
from tests.helpers import Chatter, emailed_code, latest_mail, rows, verify

MARIA = ("10000001", "maria.lopez@example.org")  # es; T-401, T-403 (withdrawable), T-405 (not allowed), T-402
WEI = ("10000002", "wei.chen@example.org")  # zh; audit AUD-DEMO-0002 submitted, not denied
JAMES = ("10000003", "james.carter@example.org")  # audit AUD-DEMO-0001 denied

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


async def enrollment_status(app: App, registry_id: str, training: str) -> str:
    from bot.registry.models import Member

    async with app.sessionmaker() as session:
        query = (
            select(Enrollment.status)
            .join(Training, Enrollment.training_id == Training.id)
            .join(Member, Enrollment.member_id == Member.id)
            .where(Member.registry_id == registry_id, Training.key == training)
        )
        return str((await session.execute(query)).scalar_one())


async def send_file(chatter: Chatter, name: str, content: bytes) -> str:
    inbound = chatter.inbound()
    inbound = type(inbound)(
        **{**{f: getattr(inbound, f) for f in inbound.__slots__}, "attachments": (Attachment(name, content),)}
    )
    chatter.last = await chatter.engine.handle(inbound)
    return "\n".join(reply.text for reply in chatter.last)


# --- identity ----------------------------------------------------------------------------------------


async def test_wrong_details_get_the_same_answer_and_no_mail(app: App) -> None:
    right, wrong = Chatter(app.engine, "right"), Chatter(app.engine, "wrong")
    await right.say("verify my account")
    await wrong.say("verify my account")
    await right.say(MARIA[0])
    await wrong.say("10000099")
    answer_right = await right.say(MARIA[1])
    answer_wrong = await wrong.say("someone@example.org")
    assert answer_right == answer_wrong and "6-digit code" in answer_right
    assert len(await rows(app, OutboxMessage)) == 1  # only the real member was e-mailed
    assert "not right" in await wrong.say("123456")
    assert await rows(app, ChatLink) == []


async def test_right_details_and_code_link_the_chat(app: App) -> None:
    member = Chatter(app.engine, "maria-chat")
    text = await verify(member, app.sessionmaker, *MARIA)
    assert "Maria" in text and "linked" in text
    links = await rows(app, ChatLink)
    assert [(link.channel, link.user_id) for link in links] == [("test", "maria-chat")]
    assert "no longer linked" in await member.say("unlink")
    assert await rows(app, ChatLink) == []


async def test_five_wrong_codes_pause_the_member_in_every_chat_and_say_until_when(
    app: App, clock: Clock
) -> None:
    member = Chatter(app.engine, "guesser")
    await member.say("verify my account")
    await member.say(MARIA[0])
    await member.say(MARIA[1])
    for left in ("4 tries", "3 tries", "2 tries", "1 try"):
        assert f"You have {left} left" in await member.say("000000")
    paused = await member.say("000000")
    # 18:00 UTC is 10:00 in Los Angeles; the pause lasts 15 minutes from the last wrong code
    assert "paused" in paused and "10:15 AM" in paused and "(855) 645-0826" in paused
    other = Chatter(app.engine, "guesser-in-a-new-chat")  # a new chat is no way round it
    await other.say("verify my account")
    await other.say(MARIA[0])
    assert "10:15 AM" in await other.say(MARIA[1])
    clock.now += timedelta(minutes=16)
    await other.say("verify my account")
    await other.say(MARIA[0])
    assert "6-digit code" in await other.say(MARIA[1])
    clock.now += timedelta(minutes=11)
    assert "no longer valid" in await other.say("123456")
    assert await rows(app, ChatLink) == []


async def test_three_code_emails_an_hour_per_member_whatever_the_chat(app: App, clock: Clock) -> None:
    for number in range(3):  # three visitors, one code each
        visitor = Chatter(app.engine, f"visitor-{number}")
        await visitor.say("verify my account")
        await visitor.say(MARIA[0])
        assert "6-digit code" in await visitor.say(MARIA[1])
    fourth = Chatter(app.engine, "visitor-4")
    await fourth.say("verify my account")
    await fourth.say(MARIA[0])
    text = await fourth.say(MARIA[1])
    assert "no more codes" in text and "11:00 AM" in text  # an hour after the first of the three
    # a Registry ID that belongs to nobody gets the very same answers: nothing tells members apart
    for number in range(4):
        visitor = Chatter(app.engine, f"prober-{number}")
        await visitor.say("verify my account")
        await visitor.say("99999999")
        reply = await visitor.say("nobody@example.org")
    assert "no more codes" in reply and "11:00 AM" in reply
    mails = await rows(app, OutboxMessage, OutboxMessage.recipient == MARIA[1])
    assert len(mails) == 3


@pytest.mark.parametrize(
    ("lang", "resend", "sent_again", "wrong_address"),
    [
        ("en", "I didn't get the code", "new code is on its way", "wrong email, I meant {}"),
        ("es", "no me llegó el código", "código nuevo", "me equivoqué de correo, es {}"),
        ("zh_Hans", "没收到验证码，再发一次", "新的验证码", "邮箱写错了，应该是 {}"),
    ],
)
async def test_at_the_code_step_a_new_code_or_another_address_and_full_width_digits(
    app: App, lang: str, resend: str, sent_again: str, wrong_address: str
) -> None:
    member = Chatter(app.engine, f"resend-{lang}", hint=lang)
    await member.say("/link")
    await member.say(MARIA[0])
    await member.say("maria@example.org")  # not the address on file: no code goes anywhere
    assert await latest_mail(app.sessionmaker, MARIA[1]) is None
    text = await member.say(wrong_address.format(MARIA[1]))
    assert "6" in text and len(member.buttons()) == 2  # a new code, or another address
    first = await latest_mail(app.sessionmaker, MARIA[1])
    assert first is not None
    assert sent_again in await member.say(resend)
    second = await latest_mail(app.sessionmaker, MARIA[1])
    assert second is not None and second.id != first.id
    code = await emailed_code(app.sessionmaker, MARIA[1])
    full_width = code.translate({ord(d): ord(d) - ord("0") + ord("０") for d in "0123456789"})
    await member.say(full_width)  # ６０６９９４ counts like 606994
    assert await rows(app, ChatLink) != []


async def test_a_member_types_the_button_to_use_another_address(app: App) -> None:
    member = Chatter(app.engine, "other-address")
    await member.say("verify my account")
    await member.say(MARIA[0])
    await member.say("maria@example.org")
    assert "Which e-mail address" in await member.say("2")  # the second button: another address
    await member.say(MARIA[1])
    assert await latest_mail(app.sessionmaker, MARIA[1]) is not None


async def test_codes_are_stored_hashed(app: App) -> None:
    from bot.registry.models import VerificationCode

    member = Chatter(app.engine, "hash")
    await member.say("verify my account")
    await member.say(MARIA[0])
    await member.say(MARIA[1])
    mail = await latest_mail(app.sessionmaker, MARIA[1])
    (code,) = await rows(app, VerificationCode)
    assert mail is not None and code.code_hash not in mail.body
    digits = next(w for w in mail.body.split() if w.isdigit() and len(w) == 6)
    assert digits not in code.code_hash


# --- find my Registry ID -----------------------------------------------------------------------------


async def test_registry_id_is_emailed_never_shown_to_an_unverified_chat(app: App) -> None:
    known, unknown = Chatter(app.engine, "k"), Chatter(app.engine, "u")
    await known.press_flow("find-registry-id")
    await unknown.press_flow("find-registry-id")
    answer_known = await known.say(MARIA[1].upper())
    answer_unknown = await unknown.say("nobody@example.org")
    assert answer_known == answer_unknown
    assert MARIA[0] not in answer_known
    mail = await latest_mail(app.sessionmaker, MARIA[1])
    assert mail is not None and MARIA[0] in mail.body
    assert len(await rows(app, OutboxMessage)) == 1


async def test_a_verified_member_sees_their_own_id(app: App) -> None:
    member = Chatter(app.engine, "wei")
    await verify(member, app.sessionmaker, *WEI)
    assert WEI[0] in await member.press_flow("find-registry-id")


# --- withdrawal --------------------------------------------------------------------------------------


async def test_maria_withdraws_twice_and_is_refused_twice(app: App) -> None:
    member = Chatter(app.engine, "maria")
    text = await member.say("quiero retirarme de una capacitación")  # the errand, asked outright
    assert "Registry ID" in text and "Prefiero ver los pasos" in " ".join(member.buttons())  # steps: one tap
    await verify(member, app.sessionmaker, *MARIA, start="")
    labels = member.buttons()
    assert len(labels) == 4 and "Supporting Dual Language Learners" in labels[1]  # soonest first: T-402
    assert "Bay Area Resource & Referral" in labels[0]
    text = await member.press("Supporting Dual Language Learners")
    assert "¿Desea que" in text or "Desea" in text
    text = await member.press("Sí")
    assert "Withdrawn" in text
    assert await enrollment_status(app, *MARIA[:1], "T-401") == "withdrawn"

    await member.press("otra")  # withdraw from another training, same conversation
    await member.press("Desarrollo del Lenguaje")
    await member.press("Sí")
    assert await enrollment_status(app, MARIA[0], "T-403") == "withdrawn"

    await member.press("otra")
    text = await member.press("Classroom Assessment Basics")
    assert "no permite" in text and "qc-trainings@laqc.example.org" in text and "(213) 555-0199" in text
    assert await enrollment_status(app, MARIA[0], "T-405") == "enrolled"

    await member.press("otra")
    text = await member.press("Positive Guidance")
    assert "(510) 555-0140" in text and "trainings@bayarea-rr.example.org" in text
    assert "2 días" in text  # the sponsor's window, and the date it closed on
    assert await enrollment_status(app, MARIA[0], "T-402") == "enrolled"


async def test_withdrawal_in_chinese_with_a_change_of_mind(app: App) -> None:
    member = Chatter(app.engine, "wei-zh")
    await member.say("中文")
    await verify(member, app.sessionmaker, *WEI)
    await member.say("我想退出培训")  # asked outright: the errand starts at once
    await member.press("家庭托儿中心")
    text = await member.say("不")
    assert "没有" in text or "仍" in text
    assert await enrollment_status(app, WEI[0], "T-406") == "enrolled"


async def test_withdrawing_with_no_upcoming_training(app: App) -> None:
    member = Chatter(app.engine, "li")
    await verify(member, app.sessionmaker, "10000005", "li.wang@example.org")
    assert "no upcoming trainings" in await member.press_flow("withdraw-training")


async def test_a_stale_choice_of_a_withdrawn_training_changes_nothing(app: App) -> None:
    member = Chatter(app.engine, "maria-stale")
    await verify(member, app.sessionmaker, *MARIA)
    await member.press_flow("withdraw-training")
    old_buttons = list(member.last)
    await member.press("Supporting Dual Language Learners")
    await member.press("Yes")
    await member.press_flow("withdraw-training")
    member.last = old_buttons
    text = await member.press("Supporting Dual Language Learners")
    assert "earlier message" in text or "already withdrawn" in text


# --- audit request -------------------------------------------------------------------------------------


async def start_audit(app: App, user: str, who: tuple[str, str]) -> Chatter:
    member = Chatter(app.engine, user)
    await verify(member, app.sessionmaker, *who)
    await member.press_flow("audit-request")
    assert "Document Submission and Qualification Audit Request Policy" in member.last[0].text
    await member.press("Continue")
    return member


async def test_audit_request_with_coursework_documents(app: App) -> None:
    member = await start_audit(app, "james-audit", JAMES)
    await member.press("Education")
    assert "more detail" in await member.say("units wrong")
    await member.say("My 12 child development units from Sacramento City College are not on my profile.")
    await member.press("Yes")
    text = await member.press("course description and a syllabus")
    assert "course description" in text
    assert "not a PDF" in await send_file(member, "virus.pdf", b"MZ\x90\x00 this is an executable")
    assert "larger than 10 MB" in await send_file(member, "huge.pdf", PDF + b"0" * (10 * 1024 * 1024))
    text = await send_file(member, "course.pdf", PDF)
    assert "syllabus" in text and "still missing" in text
    await send_file(member, "syllabus.docx", docx())
    assert "Received: photo.png" in await send_file(member, "photo.png", PNG)
    text = await member.press("Done")
    assert "course.pdf, syllabus.docx, photo.png" in text and "12 child development units" in text
    text = await member.press("Yes")
    assert "AUD-2026-00001" in text and "December 21, 2026" in text

    (audit,) = await rows(app, AuditRequest, AuditRequest.reference == "AUD-2026-00001")
    assert (audit.status, audit.category, audit.involves_coursework) == ("submitted", "education", True)
    assert audit.due_at - audit.submitted_at == timedelta(weeks=4)
    documents = await rows(app, Document, Document.audit_request_id == audit.id)
    assert sorted(d.content_type for d in documents) == [
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "image/png",
    ]
    assert all(len(d.sha256) == 64 for d in documents)
    mail = await latest_mail(app.sessionmaker, JAMES[1])
    assert mail is not None and "AUD-2026-00001" in mail.subject


async def test_cancelled_audit_leaves_nothing_behind(app: App) -> None:
    member = await start_audit(app, "james-cancel", JAMES)
    await member.press("Training")
    await member.say("The 2025 workshop on literacy is missing from my training hours report.")
    await send_file(member, "cert.pdf", PDF)
    assert len(await rows(app, Document)) == 1
    await member.say("cancel")
    assert await rows(app, Document) == []
    assert await rows(app, AuditRequest, AuditRequest.member_id != None) != []  # the demo rows only  # noqa: E711
    assert len(await rows(app, AuditRequest)) == 2


async def test_audit_without_coursework_proof_is_not_filed(app: App) -> None:
    member = await start_audit(app, "james-noproof", JAMES)
    await member.press("Education")
    await member.say("My associate degree in early childhood education is not shown on my profile at all.")
    await member.press("Yes")
    text = await member.press("don't have")
    assert "Nothing was filed" in text
    assert len(await rows(app, AuditRequest)) == 2


async def test_audit_request_resumes_after_a_restart(make_app: Callable[..., App], app: App) -> None:
    member = await start_audit(app, "restart", JAMES)
    await member.press("Employment")
    await app.close()
    restarted = make_app()
    try:
        again = Chatter(restarted.engine, "restart")
        text = await again.say("My job as site supervisor since 2019 is missing from my employment history.")
        assert "supporting documents" in text  # coursework is not asked for employment records
        await again.press("Done")
        assert "AUD-" in await again.press("Yes")
    finally:
        await restarted.close()


# --- appeal --------------------------------------------------------------------------------------------


async def test_james_appeals_his_denied_audit(app: App) -> None:
    member = Chatter(app.engine, "james-appeal")
    await verify(member, app.sessionmaker, *JAMES)
    await member.say("my audit was denied, I want to appeal")
    await member.press("AUD-DEMO-0001")
    await member.say("The letter from the college shows the units focus on child development.")
    await send_file(member, "letter.pdf", PDF)
    await member.press("Done")
    text = await member.press("Yes")
    assert "APL-2026-00001" in text and "AUD-DEMO-0001" in text
    (appeal,) = await rows(app, Appeal)
    assert appeal.status == "submitted" and appeal.due_at - appeal.submitted_at == timedelta(weeks=4)
    assert len(await rows(app, Document, Document.appeal_id == appeal.id)) == 1
    mail = await latest_mail(app.sessionmaker, JAMES[1])
    assert mail is not None and "APL-2026-00001" in mail.subject
    assert "no denied audit" in await member.press_flow("appeal")  # appealed already


async def test_wei_cannot_appeal_an_audit_that_was_not_denied(app: App) -> None:
    member = Chatter(app.engine, "wei-appeal")
    await verify(member, app.sessionmaker, *WEI)
    text = await member.press_flow("appeal")
    assert "AUD-DEMO-0002" in text
    assert await rows(app, Appeal) == []


# --- status and privacy ----------------------------------------------------------------------------------


async def test_status_needs_verification_then_lists_requests(app: App) -> None:
    member = Chatter(app.engine, "james-status")
    text = await member.say("what happened to my audit?")
    assert "AUD-DEMO-0001" not in text and "Registry ID" in text
    await member.say(JAMES[0])
    await member.say(JAMES[1])
    mail = await latest_mail(app.sessionmaker, JAMES[1])
    code = next(w for w in mail.body.split() if w.isdigit() and len(w) == 6)
    text = await member.say(code)
    assert "AUD-DEMO-0001" in text and "Course description did not show" in text


@pytest.mark.parametrize("flow", ["withdraw-training", "audit-request", "appeal", "status"])
async def test_no_member_data_reaches_an_unverified_chat(app: App, flow: str) -> None:
    member = Chatter(app.engine, f"stranger-{flow}")
    seen = [await member.press_flow(flow)]
    for attempt in (MARIA[0], "1", "yes", "Supporting Dual Language Learners", "AUD-DEMO-0001", "s"):
        seen.append(await member.say(attempt))
    joined = "\n".join(seen)
    for secret in ("Maria", "Lopez", "Dual Language", "AUD-DEMO", "10000003", "Classroom Assessment"):
        assert secret not in joined
    async with app.sessionmaker() as session:
        withdrawn = (
            await session.execute(
                select(func.count()).select_from(Enrollment).where(Enrollment.status == "withdrawn")
            )
        ).scalar_one()
    assert withdrawn == 1  # the demo data's own
