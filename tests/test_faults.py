"""The fault run, short: two serve processes on PostgreSQL, killed and cut off from the database while
members talk on the web and on Telegram. Nothing accepted is lost or stored twice, every reply and e-mail
arrives, and no more go twice than there were crashes (``tests/faults.py``; README, "Faults")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, postgres_schema
from tests.faults import FaultRun

pytestmark = pytest.mark.slow


async def test_nothing_accepted_is_lost_through_kills_and_outages(tmp_path: Path) -> None:
    async with postgres_schema() as schema:
        run = FaultRun(
            postgres_url=POSTGRES_URL,
            schema=schema,
            workdir=tmp_path,
            processes=2,
            seconds=30,
            web_members=4,
            telegram_members=4,
        )
        report = await run.run()
    print("\n".join(report.lines()))
    assert report.kills >= 1 and report.cuts >= 1 and report.stalls >= 1  # the faults did happen
    assert sum(report.refused_attempts.values()) > 0  # and members ran into them
    assert report.problems == []
    assert report.accepted == report.messages == report.stored_in
    assert report.emails_queued > 0 and report.telegram_replies_expected > 0
