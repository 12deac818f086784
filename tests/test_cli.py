"""The command line as a user runs it: chat with piped stdin, ask --json, eval, kb check, db."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import PROJECT_DIR


def run(
    args: list[str], cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["hello", "How do I withdraw from a training?"], ["help desk assistant", "My Training Events"]),
        (["hola", "olvide mi contrasena"], ["Hola", "Forgot Password", "2 horas"]),
        (["你好", "怎么报名参加培训？"], ["您好", "Training Calendar"]),
    ],
)
def test_piped_chat_in_each_language(tmp_path: Path, lines: list[str], expected: list[str]) -> None:
    result = run(["chat"], tmp_path, "\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    for fragment in expected:
        assert fragment in result.stdout
    assert (tmp_path / "registry-bot.db").exists()  # the embedded database, created on first use


def test_chat_numbers_press_buttons(tmp_path: Path) -> None:
    result = run(["chat", "--user", "maria"], tmp_path, "/language\n2\n")
    assert result.returncode == 0, result.stderr
    assert "[2] Español" in result.stdout
    assert "español" in result.stdout.split("[3]")[-1]


def test_ask_json_prints_one_object_per_question(tmp_path: Path) -> None:
    questions = (
        "How do I withdraw from a training?\n¿Qué documentos puedo enviar?\nWhat's the weather today?\n"
    )
    result = run(["ask", "--json"], tmp_path, questions)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["topic"] for r in records] == ["withdraw-training", "document-submission", None]
    assert [r["lang"] for r in records] == ["en", "es", "en"]
    for record in records:
        assert set(record) == {"question", "lang", "topic", "score", "alternatives"}
        assert isinstance(record["score"], float) and isinstance(record["alternatives"], list)


def test_ask_for_another_registry_and_a_fixed_language(tmp_path: Path) -> None:
    result = run(
        ["--registry", "ct", "ask", "--json", "--lang", "es"], tmp_path, "Who can join the registry?\n"
    )
    record = json.loads(result.stdout)
    assert (record["topic"], record["lang"]) == ("ct-who-can-join", "es")


def test_eval_reports_accuracy_per_language(tmp_path: Path) -> None:
    result = run(["eval", str(PROJECT_DIR / "eval" / "questions.jsonl")], tmp_path)
    assert result.returncode == 0, result.stderr
    for label in ("en", "es", "zh_Hans", "overall", "out of scope handled", "wrong confident answers"):
        assert label in result.stdout


def test_kb_check_passes(tmp_path: Path) -> None:
    result = run(["kb", "check"], tmp_path)
    assert result.returncode == 0, result.stdout
    assert "sound" in result.stdout


def test_db_seed_demo_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    env = {"REGISTRY_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    first = run(["db", "seed-demo"], tmp_path, env=env)
    assert "6 members" in first.stdout, first.stderr
    second = run(["db", "seed-demo"], tmp_path, env=env)
    assert "0 members, 0 sponsors, 0 trainings, 0 enrollments, 0 audit_requests" in second.stdout


def test_unknown_registry_is_a_clear_error(tmp_path: Path) -> None:
    result = run(["--registry", "zz", "ask"], tmp_path, "hi\n")
    assert result.returncode == 2
    assert "unknown registry 'zz'" in result.stderr
