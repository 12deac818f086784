"""``registry-bot bench``: a tiny run, for the shape of its JSON. Speed targets live in the bench itself."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
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


def test_bench_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    postgres = POSTGRES_URL or "none"
    size = ["--seconds", "0.4", "--members", "6", "--concurrency", "2"]
    code = main(["bench", "--json", "--no-pin", *size, "--postgres-url", postgres])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == ({"retrieval", "sqlite", "postgresql"} if POSTGRES_URL else {"retrieval", "sqlite"})
    assert result["retrieval"]["questions_per_s"] > 0
    check_database(result["sqlite"])
    if POSTGRES_URL:
        check_database(result["postgresql"])


def test_bench_text_report_names_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--no-pin", "--seconds", "0.2", "--members", "3", "--postgres-url", "none"])
    assert code == 0
    out = capsys.readouterr().out
    assert "retrieval:" in out and "sqlite" in out and "target sqlite article turns/s" in out
    assert "postgresql" not in out.splitlines()[1]


def test_bench_refuses_nonsense_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--seconds", "0"]) == 2
    assert "positive" in capsys.readouterr().err
