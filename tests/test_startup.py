"""Start-up: what ``chat`` and ``ask`` load before their first answer, and that it is still right.

Each command runs in a process of its own, as a user runs it; a probe records the modules it imported and
the files it opened, and whether the garbage collector is back on afterwards. Nothing here is timed.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.app import DEMO_KINDS, App, demo_loaded, head_revisions
from bot.cli import main
from bot.config import PROJECT_DIR
from bot.registry.session import MIGRATIONS_DIR, alembic_config
from bot.understanding.message import Message
from bot.understanding.model import TopicModel, read_arrays
from bot.understanding.store import ModelStore, copy_path, install, model_path
from tests.helpers import run_python

QUESTION = "how do I reset my password\n"
ENV_PY = str(MIGRATIONS_DIR / "env.py")
PLATFORMS = ("telegram", "slack_bolt", "slack_sdk", "twilio", "pywa", "starlette", "uvicorn")

# Runs the command line as the console script does (``main()`` with the process's own arguments), then
# writes what the process imported and opened to the file named by STARTUP_REPORT.
PROBE = """
import gc, json, os, sys

opened = set()


def record(event, args):
    if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
        opened.add(os.fspath(args[0]))


sys.addaudithook(record)
sys.argv = ["registry-bot", *sys.argv[1:]]
from bot.cli import main

code = main()
report = {
    "modules": sorted(sys.modules),
    "opened": sorted(opened),
    "collecting": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
}
with open(os.environ["STARTUP_REPORT"], "w", encoding="utf-8") as handle:
    json.dump(report, handle)
sys.exit(code)
"""


def probe(args: list[str], cwd: Path, stdin: str = QUESTION) -> tuple[str, dict[str, Any]]:
    """Run ``registry-bot ARGS`` in ``cwd``: its output, and what it imported and opened."""
    report = cwd / "startup-report.json"
    result = run_python(["-c", PROBE, *args], cwd, stdin, {"STARTUP_REPORT": str(report)})
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    report.unlink()
    return result.stdout, found


def loaded(modules: list[str], *names: str) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one of them."""
    return [
        module for module in modules if module in names or module.startswith(tuple(f"{n}." for n in names))
    ]


def revision(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(version)


def test_ask_answers_from_the_knowledge_and_one_model_alone(tmp_path: Path) -> None:
    output, found = probe(["ask", "--json"], tmp_path)
    assert json.loads(output)["topic"] == "forgot-password"
    unwanted = ("sqlalchemy", "alembic", "aiosqlite", "bot.app", "bot.engine", "bot.flows", "bot.registry")
    assert loaded(found["modules"], *unwanted, *PLATFORMS) == []
    models = {Path(path).name.split(".")[0] for path in found["opened"] if path.endswith(".npz")}
    assert models == {"ca"}  # the registry asked about; not every registry's
    assert not (tmp_path / "registry-bot.db").exists()


def test_ask_for_another_registry_reads_that_registry_s_model(tmp_path: Path) -> None:
    output, found = probe(["ask", "--json", "--registry", "ct"], tmp_path, "Who can join the registry?\n")
    assert json.loads(output)["topic"] is not None
    assert {Path(path).name.split(".")[0] for path in found["opened"] if path.endswith(".npz")} == {"ct"}


def test_the_second_process_reads_the_model_s_uncompressed_copy(tmp_path: Path) -> None:
    probe(["ask", "--json"], tmp_path)
    output, found = probe(["ask", "--json"], tmp_path)
    assert json.loads(output)["topic"] == "forgot-password"
    assert str(copy_path(PROJECT_DIR / "models" / "ca.npz")) in found["opened"]


def test_chat_on_a_new_database_migrates_it_and_loads_the_demo(tmp_path: Path) -> None:
    output, found = probe(["chat"], tmp_path)
    assert "Forgot Password" in output
    database = tmp_path / "registry-bot.db"
    assert revision(database) in head_revisions()
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM members").fetchone() == (6,)
    assert ENV_PY in found["opened"]  # Alembic ran
    assert loaded(found["modules"], *PLATFORMS) == []


def test_chat_on_an_up_to_date_database_does_not_run_alembic(tmp_path: Path) -> None:
    probe(["chat"], tmp_path)  # creates and migrates the database
    output, found = probe(["chat"], tmp_path)
    assert "Forgot Password" in output
    assert ENV_PY not in found["opened"]
    assert revision(tmp_path / "registry-bot.db") in head_revisions()
    assert loaded(found["modules"], *PLATFORMS) == []


def test_chat_on_an_up_to_date_database_does_not_import_alembic(tmp_path: Path) -> None:
    probe(["chat"], tmp_path)
    _, found = probe(["chat"], tmp_path)
    assert loaded(found["modules"], "alembic", "mako", "pygments") == []


def test_chat_upgrades_a_database_left_at_an_older_revision(tmp_path: Path) -> None:
    probe(["db", "upgrade"], tmp_path, "")
    probe(["db", "downgrade", "--revision", "0006"], tmp_path, "")
    database = tmp_path / "registry-bot.db"
    assert revision(database) == "0006"
    output, found = probe(["chat"], tmp_path)
    assert revision(database) in head_revisions()
    assert ENV_PY in found["opened"]
    assert "Forgot Password" in output


def test_the_collector_is_back_on_after_start_up_with_what_start_up_built_frozen(tmp_path: Path) -> None:
    _, found = probe(["ask", "--json"], tmp_path)
    assert found["collecting"] is True
    assert found["frozen"] > 0


def test_main_called_with_its_arguments_leaves_the_collector_as_it_was(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caller that passes the arguments (a test, a script) is not the process's own command line: the
    collector is on again afterwards and nothing of the caller's is frozen."""
    for name in [name for name in os.environ if name.startswith("REGISTRY_BOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    frozen = gc.get_freeze_count()
    try:
        assert main(["ask", "--json"]) == 0
    finally:
        root.handlers[:], root.level = handlers, level  # main() sets up logging for a process
    assert json.loads(capsys.readouterr().out)["topic"] == "forgot-password"
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_head_revisions_are_alembic_s_heads() -> None:
    assert head_revisions() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


# (statement that takes one demo row of a kind away, what seeding adds back)
TAKEN_AWAY = {
    "a member": (
        "UPDATE members SET registry_id = '99999999' WHERE registry_id = '10000006'",
        {"members": 1, "enrollments": 1},
    ),
    "a sponsor": ("UPDATE sponsors SET key = 'renamed' WHERE key = 'bayarea-rr'", {"sponsors": 1}),
    "a training": (
        "UPDATE trainings SET key = 'T-999' WHERE key = 'T-407'",
        {"trainings": 1, "enrollments": 1},
    ),
    "an enrollment": (
        "DELETE FROM enrollments WHERE member_id = (SELECT id FROM members WHERE registry_id = '10000005')",
        {"enrollments": 1},
    ),
    "an audit request": (
        "UPDATE audit_requests SET reference = 'AUD-OTHER' WHERE reference = 'AUD-DEMO-0002'",
        {"audit_requests": 1},
    ),
}


async def test_a_database_with_the_demo_data_is_told_in_a_few_queries(app: App) -> None:
    async with app.sessionmaker() as session:
        assert await demo_loaded(session, app.settings.demo_data)
    assert await app.seed_demo() == dict.fromkeys(DEMO_KINDS, 0)


@pytest.mark.parametrize("kind", TAKEN_AWAY)
async def test_a_demo_row_taken_away_is_loaded_again(app: App, kind: str) -> None:
    statement, added = TAKEN_AWAY[kind]
    async with app.database.begin() as connection:
        await connection.execute(text(statement))
    async with app.sessionmaker() as session:
        assert not await demo_loaded(session, app.settings.demo_data)
    assert await app.seed_demo() == dict.fromkeys(DEMO_KINDS, 0) | added
    async with app.sessionmaker() as session:
        assert await demo_loaded(session, app.settings.demo_data)


async def test_demo_data_with_rows_of_another_kind_is_never_taken_as_loaded(app: App, tmp_path: Path) -> None:
    data = json.loads(app.settings.demo_data.read_text(encoding="utf-8"))
    data["appeals"] = []
    other = tmp_path / "demo.json"
    other.write_text(json.dumps(data), encoding="utf-8")
    async with app.sessionmaker() as session:
        assert not await demo_loaded(session, other)


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A content folder of its own with the shipped models (and no copies of them yet)."""
    (tmp_path / "models").mkdir()
    for registry in ("ca", "ct"):
        shutil.copy2(model_path(PROJECT_DIR, registry), model_path(tmp_path, registry))
    return tmp_path


def same_answers(one: TopicModel, other: TopicModel) -> bool:
    messages = [Message.of(q, lang) for q, lang in [(QUESTION, "en"), ("olvidé mi contraseña", "es")]]
    return one.classes == other.classes and all(
        (one.probabilities(m) == other.probabilities(m)).all() for m in messages
    )


def test_a_model_read_keeps_an_uncompressed_copy_that_holds_the_same_model(content: Path) -> None:
    path = model_path(content, "ca")
    copy = copy_path(path)
    assert copy is not None and not copy.exists()
    ModelStore(content, ("ca",))
    assert copy.is_file()
    assert copy.stat().st_size > path.stat().st_size  # not compressed
    assert (copy.parent / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"
    assert same_answers(TopicModel.load(copy), TopicModel.load(path))


def test_a_replaced_model_gets_a_copy_of_its_own_and_the_old_copy_goes(content: Path) -> None:
    store = ModelStore(content, ("ca",))
    old = copy_path(model_path(content, "ca"))
    install(read_arrays(model_path(content, "ct")), content, "ca")  # another model in ca's place
    assert store.refresh()
    new = copy_path(model_path(content, "ca"))
    assert new is not None and new != old and new.is_file()
    assert old is not None and not old.exists()
    assert same_answers(store["ca"], TopicModel.load(model_path(content, "ct")))


def test_a_damaged_copy_is_passed_over_and_made_again(content: Path) -> None:
    path = model_path(content, "ca")
    store = ModelStore(content, ("ca",))
    copy = copy_path(path)
    assert copy is not None
    copy.write_bytes(b"not a model")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # the store reads it again
    assert store.refresh()
    assert same_answers(store["ca"], TopicModel.load(path))
    assert same_answers(TopicModel.load(copy), store["ca"])


def test_a_models_folder_that_cannot_take_a_copy_still_serves_the_model(content: Path) -> None:
    (content / "models" / ".cache").write_text("a file where the copies would go", encoding="utf-8")
    store = ModelStore(content, ("ca",))
    assert same_answers(store["ca"], TopicModel.load(model_path(content, "ca")))
