"""``registry-bot bench``: a tiny run, for the shape of its JSON; the limit turns and the HTTP server it
starts. Speed targets live in the bench itself: nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, func, select

from bot.app import App
from bot.bench import load_questions
from bot.bench_http import HOST, ServeProcess, alternate
from bot.bench_limit import ArticleLimit, Said
from bot.cli import main
from bot.config import Settings
from bot.messages import Inbound, Reply
from bot.registry.models import Conversation, Feedback, ProcessedUpdate, TranscriptEntry, UnansweredQuestion
from bot.understanding.message import Message
from tests.conftest import POSTGRES_URL

BLOCK = {"turns_per_s", "p50_ms", "p95_ms", "p99_ms"}


def check_database(result: dict[str, object]) -> None:
    assert {"article", "flow", "peak_rss_mb"} <= set(result)
    assert isinstance(result["peak_rss_mb"], float) and result["peak_rss_mb"] > 0
    for kind in ("article", "flow", "mixed"):
        block = result[kind]
        assert isinstance(block, dict)
        assert set(block) >= BLOCK
        for key in BLOCK:
            assert block[key] > 0, (kind, key, block)
        assert block["p50_ms"] <= block["p95_ms"] <= block["p99_ms"]
        assert block["statements_per_turn"] > 0
        assert block["errors"] == 0
    assert result["flow"]["flows_completed"] > 0  # type: ignore[index]
    article = result["article"]
    assert isinstance(article, dict)
    assert article["limit_turns_per_s"] > 0 and article["limit_statements_per_turn"] >= 5
    assert article["of_limit"] == round(article["turns_per_s"] / article["limit_turns_per_s"], 3)


def check_http(block: dict[str, Any]) -> None:
    assert set(block) >= BLOCK | {"in_process_turns_per_s", "of_in_process", "errors", "setup"}
    for key in BLOCK:
        assert block[key] > 0, (key, block)
    assert block["p50_ms"] <= block["p95_ms"] <= block["p99_ms"]
    assert block["errors"] == 0
    # its own in-process slices, taken in turn with the visitors' (not the article phase's figure)
    assert block["in_process_turns_per_s"] > 0
    assert block["of_in_process"] == round(block["turns_per_s"] / block["in_process_turns_per_s"], 3)
    assert block["setup"]["slices"] >= 2
    setup = block["setup"]
    assert setup["host"] == "127.0.0.1"
    assert "REGISTRY_BOT_CLIENT_RATE_LIMIT_PER_MINUTE=0" in setup["rate_limits"]
    with pytest.raises(ProcessLookupError):  # the server was stopped and reaped
        os.kill(setup["server_pid"], 0)
    assert listening_addresses(setup["port"]) == set()  # nothing listens there any more


def test_bench_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    postgres = POSTGRES_URL or "none"
    size = ["--seconds", "0.4", "--members", "6", "--concurrency", "2"]
    code = main(["bench", "--json", "--no-pin", *size, "--postgres-url", postgres])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    databases = {"sqlite", "postgresql"} if POSTGRES_URL else {"sqlite"}
    assert set(result) == {"retrieval", "http", *databases}
    assert result["retrieval"]["questions_per_s"] > 0
    assert set(result["http"]) == databases
    for database in databases:
        check_database(result[database])
        check_http(result["http"][database])


def test_bench_text_report_names_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--no-pin", "--seconds", "0.2", "--members", "3", "--postgres-url", "none"])
    assert code == 0
    out = capsys.readouterr().out
    assert "retrieval:" in out and "sqlite" in out and "target sqlite article turns/s" in out
    assert "postgresql" not in out.splitlines()[1]
    assert "  limit " in out and "through sqlite3 and one search" in out
    assert "http: registry-bot serve on 127.0.0.1" in out and "rate limits off" in out


async def test_the_two_sides_of_a_ratio_are_measured_in_slices_taken_in_turn() -> None:
    taken: list[tuple[str, float]] = []

    def side(name: str) -> Callable[[float], Awaitable[str]]:
        async def run(seconds: float) -> str:
            taken.append((name, seconds))
            return name

        return run

    engine, limit = await alternate(side("engine"), side("limit"), 4.0)
    # A B B A A B B A: a machine slowing down (or speeding up) meanwhile weighs on both sides alike
    assert [name for name, _ in taken] == ["engine", "limit", "limit", "engine"] * 2
    assert engine == ["engine"] * 4 and limit == ["limit"] * 4
    assert {seconds for _, seconds in taken} == {1.0}
    taken.clear()
    await alternate(side("engine"), side("limit"), 0.4)  # a short run still has a slice of each, twice
    assert [name for name, _ in taken] == ["engine", "limit", "limit", "engine"]
    assert sum(seconds for _, seconds in taken) == pytest.approx(0.8)
    taken.clear()
    # an even number of slices each, or a drift would not cancel
    await alternate(side("engine"), side("limit"), 3.0)
    assert [name for name, _ in taken] == ["engine", "limit", "limit", "engine"] * 2
    assert sum(seconds for name, seconds in taken if name == "engine") == pytest.approx(3.0)


def test_bench_refuses_nonsense_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--seconds", "0"]) == 2
    assert "positive" in capsys.readouterr().err


# --- the limit: the engine's statements, through the plain driver ---------------------------------------


async def count_rows(app: App, channel: str) -> dict[str, int]:
    """Rows of the conversations on ``channel``, per table."""
    conversations = select(Conversation.id).where(Conversation.channel == channel).scalar_subquery()
    counted = {
        "conversations": select(func.count()).where(Conversation.channel == channel),
        "deliveries with replies": select(func.count()).where(
            ProcessedUpdate.channel == channel, ProcessedUpdate.replies.is_not(None)
        ),
        "transcript": select(func.count()).where(TranscriptEntry.conversation_id.in_(conversations)),
        "answers": select(func.count()).where(Feedback.conversation_id.in_(conversations)),
        "gaps": select(func.count()).where(UnansweredQuestion.conversation_id.in_(conversations)),
    }
    async with app.database.connect() as connection:
        return {name: int((await connection.execute(query)).scalar_one()) for name, query in counted.items()}


async def test_a_limit_turn_runs_the_statements_and_writes_the_rows_of_an_engine_turn(
    app: App, database: tuple[str, str | None]
) -> None:
    url, schema = database
    understander = app.engine.router.understander
    questions = load_questions(app.settings.content_dir)
    answered = "How do I reset my password?"
    declined = next(
        q.text
        for q in questions
        if understander.understand(Message.of(q.text, q.lang), "ca").kind == "unknown"
    )
    assert understander.understand(Message.of(answered, "en"), "ca").kind == "answer"
    script = [("a", answered), ("a", answered), ("b", declined), ("b", answered)]  # two conversations

    engine_counts: list[int] = []
    said: dict[str, list[Reply]] = {}
    ran = [0]

    def count(*_args: object) -> None:
        ran[0] += 1

    event.listen(app.database.sync_engine, "before_cursor_execute", count)
    try:
        for number, (user, text) in enumerate(script):
            ran[0] = 0
            inbound = Inbound(channel="engine", user_id=user, delivery_id=f"d{number}", text=text)
            said.setdefault(text, await app.engine.handle(inbound))
            engine_counts.append(ran[0])
    finally:
        event.remove(app.database.sync_engine, "before_cursor_execute", count)

    limit = await ArticleLimit.open(
        url,
        app.database.dialect,
        schema=schema,
        concurrency=2,
        understander=understander,
        registry="ca",
        said=lambda text, _understanding: Said.of(said[text]),
    )
    try:
        limit_counts = [
            await limit.turn(channel="limit", user_id=user, delivery_id=f"d{n}", text=text, lang="en")
            for n, (user, text) in enumerate(script)
        ]
    finally:
        await limit.close()

    assert limit_counts == engine_counts == [7, 6, 7, 6]
    engine_rows, limit_rows = await count_rows(app, "engine"), await count_rows(app, "limit")
    assert limit_rows == engine_rows
    assert limit_rows == {
        "conversations": 2,
        "deliveries with replies": 4,
        "transcript": sum(1 + len(said[text]) for _, text in script),
        "answers": 3,
        "gaps": 1,
    }
    async with app.database.connect() as connection:
        kept = (
            await connection.execute(
                select(ProcessedUpdate.replies).where(
                    ProcessedUpdate.channel == "limit", ProcessedUpdate.delivery_id == "d0"
                )
            )
        ).scalar_one()
    assert kept == Said.of(said[answered]).replies


# --- the HTTP server -------------------------------------------------------------------------------------


def _ipv4(hex_address: str) -> str:
    return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))


def listening_addresses(port: int) -> set[str]:
    """The addresses something listens on at ``port`` (``*`` for any IPv4 or IPv6 address)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            host, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(_ipv4(host) if len(host) == 8 else ("*" if set(host) == {"0"} else host))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening sockets from /proc")
async def test_the_bench_server_listens_on_loopback_only_and_is_gone_afterwards(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'http.db'}"
    server = ServeProcess(Settings(), registry="ca", database_url=url, schema=None, folder=tmp_path)
    async with server:
        assert listening_addresses(server.port) == {HOST}
        async with aiohttp.ClientSession() as session:
            body = {"delivery_id": "bench-test-1", "text": "How do I reset my password?", "lang": "en"}
            async with session.post(f"{server.url}/api/messages", json=body) as response:
                assert response.status == 200
                assert "password" in (await response.json())["replies"][0]["text"].lower()
                assert "registry_bot_visitor" in response.cookies
    assert server.process is not None and server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    assert listening_addresses(server.port) == set()
