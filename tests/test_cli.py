"""The command line as a user runs it: chat with piped stdin, ask --json, eval, kb check, db."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bot.config import PROJECT_DIR
from tests.helpers import run_python


def run(
    args: list[str], cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "bot", *args], cwd, stdin, env)


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


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", "--json", "--registry", "ct", "--lang", "es"],  # as design.md writes it
        ["--registry", "ct", "ask", "--json", "--lang", "es"],
    ],
)
def test_ask_for_another_registry_and_a_fixed_language(tmp_path: Path, argv: list[str]) -> None:
    result = run(argv, tmp_path, "Who can join the registry?\n")
    assert result.returncode == 0, result.stderr
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


def code_from_outbox(cwd: Path, recipient: str) -> str:
    """What `registry-bot outbox` shows of the newest code sent to ``recipient``."""
    listing = run(["outbox"], cwd)
    assert listing.returncode == 0, listing.stderr
    mail = listing.stdout.split(f"to {recipient}")[-1]
    found = re.search(r"^\s+(\d{6})\s*$", mail, flags=re.M)
    assert found, listing.stdout
    return found.group(1)


def enrollment_status(db: Path, training: str) -> str:
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT e.status FROM enrollments e JOIN trainings t ON t.id = e.training_id "
            "JOIN members m ON m.id = e.member_id WHERE t.key = ? AND m.registry_id = '10000001'",
            (training,),
        ).fetchone()
    return str(row[0])


def test_a_withdrawal_in_spanish_through_the_terminal(tmp_path: Path) -> None:
    """The README's demo: verify with the code read from `registry-bot outbox`, then withdraw."""
    first = run(
        ["chat", "--user", "maria"],
        tmp_path,
        "quiero retirarme de una capacitación\n10000001\nmaria.lopez@example.org\n",
    )
    assert "código de 6 dígitos" in first.stdout, first.stdout
    code = code_from_outbox(tmp_path, "maria.lopez@example.org")
    # the same chat user carries on in a new terminal session: the flow resumes at the code
    second = run(["chat", "--user", "maria"], tmp_path, f"{code}\n2\nsí\n")
    assert "vinculado" in second.stdout and "Supporting Dual Language Learners" in second.stdout
    assert "Withdrawn" in second.stdout, second.stdout
    assert enrollment_status(tmp_path / "registry-bot.db", "T-401") == "withdrawn"
    assert enrollment_status(tmp_path / "registry-bot.db", "T-403") == "enrolled"


def test_a_number_typed_in_the_next_run_presses_the_button_shown_last(tmp_path: Path) -> None:
    first = run(["chat", "--user", "ana"], tmp_path, "how do I withdraw from a training?\n")
    assert "[1] Yes, start now" in first.stdout, first.stdout
    second = run(["chat", "--user", "ana"], tmp_path, "When you can't withdraw from a training\n")  # typed
    # the title, read as words: no Markdown stars in a terminal (bold only on an interactive one)
    assert second.stdout.startswith("When you can't withdraw from a training\n"), second.stdout
    assert "**" not in first.stdout + second.stdout
    third = run(["chat", "--user", "bo"], tmp_path, "how do I withdraw from a training?\n")
    assert "[1] Yes, start now" in third.stdout
    fourth = run(["chat", "--user", "bo"], tmp_path, "1\n")  # a new terminal session
    assert "Registry ID" in fourth.stdout and "I'm sorry" not in fourth.stdout, fourth.stdout


def test_registry_id_goes_to_the_outbox_not_the_terminal(tmp_path: Path) -> None:
    result = run(["chat"], tmp_path, "I lost my registry id\n1\nwei.chen@example.org\n")
    assert "If that address belongs to a Registry profile" in result.stdout, result.stdout
    assert "10000002" not in result.stdout
    listing = run(["outbox"], tmp_path)
    assert "to wei.chen@example.org" in listing.stdout and "10000002" in listing.stdout


def test_chinese_status_needs_verification_first(tmp_path: Path) -> None:
    result = run(
        ["chat", "--user", "wei"], tmp_path, "我的审核结果怎么样了\n10000002\nwei.chen@example.org\n"
    )
    assert "验证码" in result.stdout or "6 位" in result.stdout, result.stdout
    assert "AUD-DEMO-0002" not in result.stdout  # nothing of the record before the code
    code = code_from_outbox(tmp_path, "wei.chen@example.org")
    done = run(["chat", "--user", "wei"], tmp_path, f"{code}\n")
    assert "AUD-DEMO-0002" in done.stdout, done.stdout


def test_the_terminal_shows_markdown_as_text_and_bold_only_when_it_can() -> None:
    from bot.channels.plain import BOLD_OFF, BOLD_ON, plain_text

    reply = "**Forgot Password**: see [the help page](https://example.org/help)."
    assert plain_text(reply) == "Forgot Password: see the help page (https://example.org/help)."
    assert plain_text(reply, styled=True).startswith(f"{BOLD_ON}Forgot Password{BOLD_OFF}:")
