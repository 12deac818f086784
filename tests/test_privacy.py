"""Personal data is kept only as long as configured, and never reaches the logs."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.registry.models import (
    Feedback,
    OutboxMessage,
    ProcessedUpdate,
    TranscriptEntry,
    UnansweredQuestion,
    VerificationCode,
)
from tests.conftest import Clock
from tests.helpers import Chatter, count_rows, latest_mail, rows, verify
from tests.test_cli import run

MARIA = ("10000001", "maria.lopez@example.org")


async def test_purge_deletes_only_what_is_past_its_retention(app: App, clock: Clock) -> None:
    old = Chatter(app.engine, "old")
    await old.say("what is the training calendar? my ID is 10000001")  # an answer, kept with its words
    await old.say("verify my account")
    await old.say(MARIA[0])
    await old.say(MARIA[1])  # a code, and an e-mail that stays unsent
    old_entries = await count_rows(app, TranscriptEntry)
    clock.now += timedelta(days=200)
    recent = Chatter(app.engine, "recent")
    await recent.say("I forgot my password")
    recent_entries = await count_rows(app, TranscriptEntry) - old_entries

    purged = await app.purge()
    assert purged["transcripts"] == old_entries and purged["verification_codes"] == 1
    assert purged["processed_deliveries"] == 4 and purged["sent_mail"] == 0
    assert await count_rows(app, TranscriptEntry) == recent_entries  # the recent conversation stays
    assert await count_rows(app, VerificationCode) == 0
    assert await count_rows(app, ProcessedUpdate) == 1
    assert await count_rows(app, OutboxMessage) == 1  # unsent mail is never purged
    # the answers stay counted for the digest's helpfulness, without the old question's words
    assert purged["answered_questions"] == 1
    assert sorted((row.topic or "", row.question or "") for row in await rows(app, Feedback)) == [
        ("forgot-password", "I forgot my password"),
        ("training-calendar", ""),
    ]
    assert await app.purge() == dict.fromkeys(purged, 0)  # nothing more to do


def test_purge_from_the_command_line(tmp_path: Path) -> None:
    result = run(["purge"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purged: 0 transcripts")


async def test_logs_hold_no_email_code_or_message_text(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    member = Chatter(app.engine, "private")
    await member.say("Mi hija está enferma, quiero retirarme de una capacitación")
    await verify(member, app.sessionmaker, *MARIA, start="verify my account")
    mail = await latest_mail(app.sessionmaker, MARIA[1])
    code = re.search(r"\b\d{6}\b", mail.body)
    assert code is not None
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    for secret in (MARIA[1], code.group(0), "hija", "enferma"):
        assert secret not in logged


async def test_what_a_paused_member_types_is_kept_for_staff_without_their_details(app: App) -> None:
    member = Chatter(app.engine, "locked-out")
    await member.say("verify my account")
    await member.say(MARIA[0])
    await member.say(MARIA[1])
    for _ in range(5):
        await member.say("000000")
    assert "paused" in member.last[0].text
    # the flow is over: what comes next is read as questions, and what no article answers is kept
    for typed in (
        MARIA[0],
        f"my id is {MARIA[0]} and my e-mail is {MARIA[1]}",
        "the code was 123456, call me at (213) 555-0199",
        "我的邮箱是maria.lopez@example.org，代码１２３４５６",
    ):
        await member.say(typed)
    kept = [row.text for row in await rows(app, UnansweredQuestion)]
    assert len(kept) >= 3, kept
    for text in kept:
        for detail in (MARIA[0], MARIA[1], "123456", "555-0199", "１２３４５６"):
            assert detail not in text
    assert any("[e-mail]" in text and "[number]" in text for text in kept)
    stats = await app.helpdesk.stats(days=7)  # what staff see with /registry stats
    assert MARIA[1] not in str(stats) and MARIA[0] not in str(stats)
