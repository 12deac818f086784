"""The content-gap digest in Slack: questions the assistant could not answer, grouped across languages,
and staff's decisions on them through the real Bolt handlers against the local Slack Web API."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.slack import SlackChannel, digest_blocks
from bot.learning import Digest
from bot.registry.models import GapGroup, TrainingLabel, UnansweredQuestion
from tests import test_slack
from tests.fakes.slack_api import block_kit_errors
from tests.helpers import Chatter
from tests.test_slack import STAFF, STRANGER, Desk

# What members asked that no article answers (a mobile app), in three languages, and two that belong
# nowhere at all.
APP = [
    ("en", "does the registry have a mobile app for my phone"),
    ("en", "is there an app I can download for the registry"),
    ("es", "hay una aplicación para el celular del registro"),
    ("es", "existe app del registro para descargar en mi teléfono"),
    ("zh_Hans", "登记系统有手机应用程序吗"),
    ("zh_Hans", "有没有可以下载的登记系统手机app"),
]
ELSEWHERE = [("en", "what's the weather tomorrow"), ("es", "me recomiendas una receta de pollo")]


desk = test_slack.desk  # the help desk in Slack, with the content-gap digest (a fixture)


TS = "1700000000.000001"  # the digest's message: the first the local Slack posts


async def the_app_group(desk: Desk) -> int:
    """After the week's questions and ``/registry gaps``: the group of the questions about an app."""
    await ask_everything(desk)
    await desk.command(STAFF, "gaps")
    (post,) = digest_posts(desk)
    return group_of(post.blocks, APP[0][1])


async def ask_everything(desk: Desk) -> None:
    for number, (_, question) in enumerate([*APP, *ELSEWHERE]):
        await Chatter(desk.app.engine, f"gap-member-{number}").say(question)


def digest_posts(desk: Desk) -> list[Any]:
    return [call for call in desk.slack.called("chat.postMessage") if call.text.startswith("Content gaps")]


def group_of(blocks: list[dict[str, Any]], text: str) -> int:
    """The id of the digest group whose examples show ``text``."""
    for block in blocks:
        if block.get("block_id", "").startswith("gap:") and text in block["text"]["text"]:
            return int(block["block_id"].removeprefix("gap:"))
    raise AssertionError(f"no group shows {text!r}")


async def choose(desk: Desk, user: str, group_id: int, topic: str, *, ts: str) -> Any:
    """Pick "belongs to <topic>" in a group's menu, as Slack sends it."""
    option = {"text": {"type": "plain_text", "text": topic}, "value": f"{group_id}:{topic}"}
    menu = {"action_id": "gap_topic", "type": "static_select", "selected_option": option}
    return await desk.act(user, menu, ts=ts)


async def submit_topic_id(desk: Desk, user: str, metadata: str, topic_id: str) -> Any:
    values = {"topic": {"id": {"type": "plain_text_input", "value": topic_id}}}
    return await desk.submit(user, "gap_new_article", metadata, values)


async def grouped(desk: Desk) -> dict[str, int | None]:
    """Each stored question's text and the digest group it is in now."""
    async with desk.app.sessionmaker() as session:
        rows = (await session.execute(select(UnansweredQuestion))).scalars()
        return {row.text: row.gap_group_id for row in rows}


async def labels(desk: Desk) -> list[TrainingLabel]:
    async with desk.app.sessionmaker() as session:
        return list((await session.execute(select(TrainingLabel).order_by(TrainingLabel.id))).scalars())


async def test_the_digest_groups_one_question_asked_in_three_languages(desk: Desk) -> None:
    await ask_everything(desk)
    response = await desk.command(STAFF, "gaps")
    assert response.status_code == 200
    (post,) = digest_posts(desk)
    assert not block_kit_errors(post.blocks)  # the local Slack refuses what Slack would
    text = json.dumps(post.blocks, ensure_ascii=False)
    app_group = group_of(post.blocks, APP[0][1])
    groups = await grouped(desk)
    assert {groups[question] for _, question in APP} == {app_group}
    assert len({groups[question] for _, question in ELSEWHERE} | {app_group}) == 3
    largest = next(b for b in post.blocks if b.get("block_id", "").startswith("gap:"))
    assert largest["block_id"] == f"gap:{app_group}"  # largest first
    shown = largest["text"]["text"]
    assert shown.startswith("*6 questions* · English, Spanish, Chinese (Simplified) · ")
    assert sum(f"> {question}" in shown for _, question in APP) == 3  # one example per language
    assert "_Came close to:_" in largest["text"]["text"]
    options = [o["value"] for o in largest["accessory"]["options"]]
    assert f"{app_group}:forgot-password" in options and not any(":ct-" in o for o in options)
    assert "Article helpfulness" in text
    respond = desk.slack.called("respond")[-1]
    assert "Posted the content-gap digest" in str(respond.params)


async def test_staff_label_a_group_and_undo_it_in_slack(desk: Desk) -> None:
    app_group = await the_app_group(desk)

    await choose(desk, STRANGER, app_group, "registry-overview", ts=TS)  # not on the staff list
    assert not await labels(desk)
    assert "Only help desk staff" in desk.slack.called("chat.postEphemeral")[-1].text

    await choose(desk, STAFF, app_group, "ct-registry-overview", ts=TS)  # another registry's topic
    assert not await labels(desk)
    assert "not a topic of this registry" in desk.slack.called("chat.postEphemeral")[-1].text

    await choose(desk, STAFF, app_group, "registry-overview", ts=TS)
    stored = await labels(desk)
    assert sorted((label.language, label.text) for label in stored) == sorted(APP)
    assert {(label.topic, label.labelled_by, label.undone_at) for label in stored} == {
        ("registry-overview", STAFF, None)
    }
    update = desk.slack.called("chat.update")[-1]
    assert not block_kit_errors(update.blocks)
    context = json.dumps(update.blocks, ensure_ascii=False)
    assert (
        "✅ Belongs to *What the California Early Care and Education Workforce Registry is*" in context
        or ("✅ Belongs to *" in context and "(`registry-overview`) · by <@USTAFF>" in context)
    )
    assert "gap_undo" in update.action_ids()

    await choose(desk, STAFF, app_group, "forgot-password", ts=TS)  # a second choice changes nothing
    assert {label.topic for label in await labels(desk)} == {"registry-overview"}
    assert "already decided" in desk.slack.called("chat.postEphemeral")[-1].text

    await desk.click(STAFF, "gap_undo", str(app_group), ts=TS)
    assert all(label.undone_by == STAFF and label.undone_at is not None for label in await labels(desk))
    assert "gap_topic" in json.dumps(desk.slack.called("chat.update")[-1].blocks)  # open again

    # the next digest holds the undone group's questions again; a label there is stored anew
    await desk.command(STAFF, "gaps")
    newer = digest_posts(desk)[-1]
    assert group_of(newer.blocks, APP[0][1]) != app_group
    await desk.click(STAFF, "gap_ignore", str(app_group), ts=TS)  # the old digest's group is empty now
    assert "newer digest" in desk.slack.called("chat.postEphemeral")[-1].text


async def test_a_group_needing_a_new_article_is_listed_until_the_article_exists(desk: Desk) -> None:
    app_group = await the_app_group(desk)
    await desk.click(STAFF, "gap_new_article", str(app_group), ts=TS)
    opened = desk.slack.called("views.open")[-1]
    view = (
        json.loads(opened.params["view"]) if isinstance(opened.params["view"], str) else opened.params["view"]
    )
    metadata = view["private_metadata"]

    refused = await submit_topic_id(desk, STAFF, metadata, "Mobile App!")
    assert refused.json()["response_action"] == "errors"
    existing = await submit_topic_id(desk, STAFF, metadata, "forgot-password")
    assert "already has an article" in existing.json()["errors"]["topic"]
    assert (await submit_topic_id(desk, STAFF, metadata, "mobile-app")).status_code == 200
    async with desk.app.sessionmaker() as session:
        group = await session.get(GapGroup, app_group)
        assert group is not None and (group.status, group.topic, group.decided_by) == (
            "new_article",
            "mobile-app",
            STAFF,
        )
    assert not await labels(desk)  # a new article is written, not learned from these questions

    await desk.command(STAFF, "gaps")
    waiting = json.dumps(digest_posts(desk)[-1].blocks, ensure_ascii=False)
    assert "Waiting for a new article" in waiting and "`mobile-app`: 6 question(s)" in waiting

    # once an article with that id is published, the group is no longer listed
    desk.app.gaps.knowledge.articles[("ca", "en", "mobile-app")] = desk.app.gaps.knowledge.article(
        "ca", "registry-overview", "en"
    )  # type: ignore[assignment]
    try:
        assert not await desk.app.gaps.waiting_for_articles()
    finally:
        del desk.app.gaps.knowledge.articles[("ca", "en", "mobile-app")]


def test_the_digest_with_the_longest_inputs_passes_block_kit_validation() -> None:
    from bot.learning import DigestGroup, Near, WaitingArticle
    from bot.registry.learning import Helpfulness

    long = "x" * 4000 + " <@U1> & <!channel>"
    groups = tuple(
        DigestGroup(
            id=2**31 - 1 - n,
            size=10_000,
            languages=("en", "es", "zh_Hans"),
            examples=(("en", long), ("es", long), ("zh_Hans", long)),
            kinds=(("clarify", 5000), ("unhelpful", 1), ("unknown", 4999)),
            near=tuple(Near(f"t{n}", "T" * 300, 0.5) for n in range(3)),
            unhelpful_on=tuple("U" * 300 for _ in range(5)),
            status="open" if n % 2 else "labelled",
            topic="t" * 64,
            topic_title="T" * 300,
            decided_by="U" * 32,
        )
        for n in range(12)
    )
    digest = Digest(
        registry="ca",
        created_at=datetime(2026, 11, 30, tzinfo=UTC),
        days=7,
        questions=120_000,
        groups=groups,
        topics=tuple((f"topic-{n}", "T" * 300) for n in range(150)),
        helpfulness=tuple(("T" * 300, Helpfulness(f"t{n}", "en", 10**6, 10**5, 10**5)) for n in range(200)),
        waiting=tuple(
            WaitingArticle(n, "w" * 63, 10_000, long, "U" * 32, datetime(2026, 11, 30, tzinfo=UTC))
            for n in range(40)
        ),
    )
    blocks = digest_blocks(digest)
    assert not block_kit_errors(blocks)
    assert "<@U1>" not in json.dumps(blocks) and "<!channel>" not in json.dumps(blocks)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # Monday 09:00 in California by default; a Monday afternoon waits for next Monday
        (datetime(2026, 11, 23, 18, 0, tzinfo=UTC), datetime(2026, 11, 30, 17, 0, tzinfo=UTC)),
        (datetime(2026, 11, 23, 16, 0, tzinfo=UTC), datetime(2026, 11, 23, 17, 0, tzinfo=UTC)),
        (datetime(2026, 11, 25, 12, 0, tzinfo=UTC), datetime(2026, 11, 30, 17, 0, tzinfo=UTC)),
    ],
)
def test_the_weekly_digest_is_due_on_the_configured_day_and_local_time(
    desk: Desk, now: datetime, due: datetime
) -> None:
    assert desk.channel.next_digest(now) == due
    assert desk.channel.next_digest(due) - due == timedelta(days=7)


async def test_the_weekly_digest_is_posted_once_even_by_two_processes(desk: Desk, clock: Any) -> None:
    await ask_everything(desk)
    due = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # Monday 09:00 in California
    clock.now = due - timedelta(seconds=0.5)
    # two `serve` processes' Slack apps on one database: the digest is still posted once
    twin = SlackChannel(desk.app.helpdesk, desk.app.settings, desk.app.gaps)
    await desk.channel.start()
    await twin.start()
    try:
        for _ in range(150):  # due in half a second; grouping takes a moment on a slow machine
            if digest_posts(desk):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the twin claimed the same digest meanwhile, and lost
    finally:
        await desk.channel.stop()
        await twin.stop()
    (post,) = digest_posts(desk)
    assert group_of(post.blocks, APP[0][1])
