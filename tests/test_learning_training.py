"""`kb train` learns from staff's labels, refuses a model that does worse, keeps the one it replaced
(`kb rollback`), and a running engine answers with a new model from its next turn.

Training is Connecticut's (about 20 s each); every test works on a copy of the project's content, never on
``models/`` of the checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bot.app import App, load_knowledge
from bot.cli import main
from bot.config import PROJECT_DIR
from bot.evaluation import ask
from bot.intents import Understander
from bot.registry.models import TrainingLabel
from bot.registry.session import make_engine, make_sessionmaker, upgrade
from bot.understanding import train
from bot.understanding.retrain import held_out, label_examples
from bot.understanding.store import ModelStore, evaluation_files, install, model_path, previous_path
from tests.conftest import ready
from tests.helpers import Chatter

CONTENT = ("knowledge", "training", "eval", "models", "profiles")
PERKS = "tell me about the perks"  # the shipped Connecticut model does not answer it
# staff's labels of paraphrases (none is the question above), and two that must not be trained on
PERK_LABELS = [
    ("ct", "en", "what perks do I get", "ct-benefits"),
    ("ct", "en", "are there any perks for members", "ct-benefits"),
    ("ct", "en", "perks of joining", "ct-benefits"),
    ("ct", "en", "which perks come with an account", "ct-benefits"),
    ("ct", "en", "list the perks please", "ct-benefits"),
    ("ct", "en", "any perks?", "ct-benefits"),
    ("ct", "en", "I forgot my password", "forgot-password"),  # a California topic
    ("ca", "en", "perks", "registry-overview"),  # California's label: ct is trained alone
]
BENEFITS_ARTICLE = "Recognition and professionalism"  # from knowledge/ct/en/ct-benefits.md


def copy_content(target: Path) -> Path:
    """A copy of what the assistant reads (articles, question files, models, profiles) at ``target``."""
    for folder in CONTENT:
        shutil.copytree(PROJECT_DIR / folder, target / folder)
    return target


def add_labels(url: str, rows: Sequence[tuple[str, str, str, str]], *, schema: str | None = None) -> None:
    """Store staff labels (registry, language, text, topic) the way the Slack side does, migrating first."""

    async def store() -> None:
        database = make_engine(url, schema=schema)
        try:
            await upgrade(database)
            async with make_sessionmaker(database)() as session, session.begin():
                for registry, language, text, topic in rows:
                    session.add(
                        TrainingLabel(
                            registry_key=registry,
                            language=language,
                            text=text,
                            topic=topic,
                            labelled_by="U042",
                            labelled_at=datetime(2026, 12, 1, 15, 30, tzinfo=UTC),
                        )
                    )
        finally:
            await database.dispose()

    asyncio.run(store())


@dataclass(frozen=True)
class Label:
    """A stored label as training sees it (``bot.registry.learning.Label`` has these and more)."""

    id: int
    registry: str
    language: str
    text: str
    topic: str


@dataclass
class Ran:
    code: int
    out: str
    err: str


def registry_bot(*args: str, content: Path, database: str, schema: str | None = None) -> Ran:
    """``registry-bot ARGS`` in this process, on ``content`` and ``database``, from ``content``'s folder."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("REGISTRY_BOT_")]:
            patch.delenv(name)
        patch.setenv("REGISTRY_BOT_CONTENT_DIR", str(content))
        patch.setenv("REGISTRY_BOT_DATABASE_URL", database)
        if schema:
            patch.setenv("REGISTRY_BOT_DATABASE_SCHEMA", schema)
        patch.chdir(content)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            root.handlers[:], root.level = handlers, level  # main() sets up logging for a process
    return Ran(code, out.getvalue(), err.getvalue())


def answer(content: Path, question: str, registry: str = "ct") -> str | None:
    understander = Understander(load_knowledge(content / "knowledge"), ModelStore(content, (registry,)))
    topic: str | None = ask(understander, question, registry=registry, lang="en")["topic"]
    return topic


@dataclass
class Taught:
    """Connecticut trained once with ``PERK_LABELS`` in the database: what ``kb train`` said."""

    content: Path
    database: str
    run: Ran


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> Taught:
    content = copy_content(tmp_path_factory.mktemp("taught"))
    database = f"sqlite+aiosqlite:///{content / 'registry.db'}"
    add_labels(database, PERK_LABELS)
    return Taught(
        content, database, registry_bot("kb", "train", "--registry", "ct", content=content, database=database)
    )


@pytest.mark.slow
def test_labels_of_paraphrases_teach_the_model_a_question_it_did_not_answer(taught: Taught) -> None:
    assert taught.run.code == 0, taught.run.err
    shipped = previous_path(taught.content, "ct")  # the model it replaced: the shipped one
    assert shipped.read_bytes() == model_path(PROJECT_DIR, "ct").read_bytes()
    assert answer(PROJECT_DIR, PERKS) != "ct-benefits"
    assert answer(taught.content, PERKS) == "ct-benefits"
    assert "6 staff labels" in taught.run.out


@pytest.mark.slow
def test_a_label_of_another_registrys_topic_is_not_trained_on(taught: Taught) -> None:
    model = ModelStore(taught.content, ("ct",))["ct"]
    assert "forgot-password" not in model.classes  # the label cannot move a question to California's topic
    assert model.info["labels"] == 6  # neither that label nor California's own
    assert "'forgot-password' is not a topic of ct; not trained on" in taught.run.err
    # and the files' hash is the files' alone: kb check still finds the model up to date
    assert model.inputs_hash == ModelStore(PROJECT_DIR, ("ct",))["ct"].inputs_hash
    assert (taught.content / "models" / "ca.npz").read_bytes() == model_path(PROJECT_DIR, "ca").read_bytes()


@pytest.mark.slow
def test_if_changed_leaves_a_model_trained_on_todays_labels_alone(taught: Taught) -> None:
    before = model_path(taught.content, "ct").stat()
    again = registry_bot(
        "kb", "train", "--if-changed", "--registry", "ct", content=taught.content, database=taught.database
    )
    assert again.code == 0 and again.out.strip() == "ct: up to date", again.out + again.err
    after = model_path(taught.content, "ct").stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


@pytest.mark.slow
def test_new_labels_are_trained_on_if_changed_and_a_model_made_worse_needs_force(tmp_path: Path) -> None:
    content = copy_content(tmp_path / "content")
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    add_labels(database, [])  # a migrated database without labels: the shipped model is up to date
    unchanged = registry_bot(
        "kb", "train", "--if-changed", "--registry", "ct", content=content, database=database
    )
    assert unchanged.out.strip() == "ct: up to date", unchanged.out + unchanged.err
    shipped = model_path(content, "ct").read_bytes()

    # staff "teach" every article's own questions as the next topic's
    knowledge = load_knowledge(content / "knowledge")
    topics = knowledge.topics("ct")
    wrong = [
        ("ct", "en", f"{question} thanks", topics[(number + 1) % len(topics)])
        for number, topic in enumerate(topics)
        for question in knowledge.articles[("ct", "en", topic)].questions
    ]
    add_labels(database, wrong)
    refused = registry_bot(
        "kb", "train", "--if-changed", "--registry", "ct", content=content, database=database
    )
    assert refused.code == 3, refused.out + refused.err
    assert "not installed" in refused.out and "worse: fewer right" in refused.out
    for name in ("questions-blind.jsonl", "questions-blind4.jsonl"):  # the figures of both, per file
        assert f"  {name}\n    current: " in refused.out
    assert model_path(content, "ct").read_bytes() == shipped
    assert not previous_path(content, "ct").exists()

    forced = registry_bot("kb", "train", "--force", "--registry", "ct", content=content, database=database)
    assert forced.code == 0, forced.out + forced.err
    assert "installed anyway (--force)" in forced.out
    assert model_path(content, "ct").read_bytes() != shipped
    assert previous_path(content, "ct").read_bytes() == shipped
    assert ModelStore(content, ("ct",))["ct"].info["labels"] == len(wrong)


def test_a_label_worded_like_an_evaluation_question_is_not_trained_on() -> None:
    """Members may type what an evaluation file asks; the evaluation files stay held out all the same."""
    first = json.loads((PROJECT_DIR / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    registry, topic = first["registry"], first["topic"]
    topics = load_knowledge(PROJECT_DIR / "knowledge").topics(registry)
    asked = Label(1, registry, "en", first["q"].upper() + "?", topic)  # the same words
    other = Label(2, registry, "en", "which perks come with an account", topic)
    held = held_out(evaluation_files(PROJECT_DIR), registry)
    examples, warnings = label_examples([asked, other], registry, topics, held_out=held)
    assert [example.text for example in examples] == [other.text]
    assert warnings == [f"label 1 ({registry}, {asked.text[:60]!r}): an evaluation question; not trained on"]


def test_kb_train_creates_no_database_to_read_labels(tmp_path: Path) -> None:
    content = copy_content(tmp_path / "content")
    missing = tmp_path / "registry-bot.db"
    ran = registry_bot("kb", "train", "--if-changed", content=content, database=f"sqlite:///{missing}")
    assert ran.code == 0 and ran.out.splitlines() == ["ca: up to date", "ct: up to date"], ran.err
    assert not missing.exists()


def test_kb_train_stops_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    content = copy_content(tmp_path / "content")
    ran = registry_bot(
        "kb",
        "train",
        "--registry",
        "ct",
        content=content,
        database="postgresql+asyncpg://nobody@127.0.0.1:1/x",
    )
    assert ran.code == 2
    assert "cannot read staff's labels: the database cannot be reached" in ran.err
    assert not previous_path(content, "ct").exists()  # nothing trained


@pytest.mark.slow
def test_rollback_swaps_the_current_and_previous_model_and_twice_undoes_it(
    taught: Taught, tmp_path: Path
) -> None:
    content = copy_content(tmp_path / "content")
    for registry_file in ("ct.npz", "ct.previous.npz"):
        shutil.copy(taught.content / "models" / registry_file, content / "models" / registry_file)
    trained, shipped = model_path(content, "ct").read_bytes(), previous_path(content, "ct").read_bytes()
    database = f"sqlite:///{tmp_path / 'none.db'}"

    back = registry_bot("kb", "rollback", "--registry", "ct", content=content, database=database)
    assert back.code == 0 and "the previous model is in use again (0 staff labels" in back.out, back.err
    assert model_path(content, "ct").read_bytes() == shipped
    assert previous_path(content, "ct").read_bytes() == trained
    assert answer(content, PERKS) != "ct-benefits"

    again = registry_bot("kb", "rollback", "--registry", "ct", content=content, database=database)
    assert again.code == 0 and "(6 staff labels" in again.out
    assert model_path(content, "ct").read_bytes() == trained
    assert previous_path(content, "ct").read_bytes() == shipped
    assert not list((content / "models").glob("*.tmp.npz"))


def test_rollback_without_a_previous_model_says_so(tmp_path: Path) -> None:
    content = copy_content(tmp_path / "content")
    ran = registry_bot("kb", "rollback", "--registry", "ct", content=content, database="sqlite://")
    assert ran.code == 2 and "ct has no previous model" in ran.err
    assert model_path(content, "ct").read_bytes() == model_path(PROJECT_DIR, "ct").read_bytes()


def test_a_model_store_reads_a_replaced_file_and_keeps_its_model_when_the_new_file_is_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = copy_content(tmp_path / "content")
    store = ModelStore(content, ("ct",))
    assert store["ct"].info["registry"] == "ct" and store.refresh() is False

    replacement = content / "models" / "replacement.npz"
    shutil.copy(content / "models" / "ca.npz", replacement)  # any other model file will do
    replacement.replace(model_path(content, "ct"))
    assert store.refresh() is True
    assert store["ct"].info["registry"] == "ca"
    assert store.refresh() is False  # nothing changed since

    model_path(content, "ct").write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING):
        assert store.refresh() is False
    assert store["ct"].info["registry"] == "ca"
    assert "stays in use" in caplog.text


@pytest.mark.slow
async def test_a_running_engine_answers_with_a_model_installed_after_it_started(
    make_app: Callable[..., App], taught: Taught, tmp_path: Path
) -> None:
    content = copy_content(tmp_path / "content")
    async with ready(make_app("ct", content_dir=content)) as app:
        before = await Chatter(app.engine, "before").say(PERKS)
        assert BENEFITS_ARTICLE not in before
        with np.load(taught.content / "models" / "ct.npz", allow_pickle=False) as trained:
            install(dict(trained), content, "ct")  # what kb train does while `serve` runs
        after = await Chatter(app.engine, "after").say(PERKS)
        assert BENEFITS_ARTICLE in after


def test_labels_list_export_and_undo(database: tuple[str, str | None], tmp_path: Path) -> None:
    url, schema = database
    content = copy_content(tmp_path / "content")
    add_labels(url, PERK_LABELS[:2] + PERK_LABELS[-1:], schema=schema)
    place: dict[str, object] = {"content": content, "database": url, "schema": schema}

    listed = registry_bot("kb", "labels", "list", **place)
    assert listed.code == 0, listed.err
    rows = [line.split("\t") for line in listed.out.splitlines()]
    assert [row[:4] for row in rows] == [
        ["1", "ct", "ct-benefits", "en"],
        ["2", "ct", "ct-benefits", "en"],
        ["3", "ca", "registry-overview", "en"],
    ]
    assert rows[0][4:] == ["U042 2026-12-01 15:30", "active", "what perks do I get"]

    undone = registry_bot("kb", "labels", "undo", "1", **place)
    assert undone.code == 0 and "label 1 undone" in undone.out, undone.err
    assert "\tundone by cli " in registry_bot("kb", "labels", "list", **place).out.splitlines()[0]
    assert registry_bot("kb", "labels", "undo", "1", **place).code == 2  # undone already

    exported = tmp_path / "labels.jsonl"
    assert registry_bot("kb", "labels", "export", "--output", str(exported), **place).code == 0
    lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"q": "are there any perks for members", "lang": "en", "registry": "ct", "topic": "ct-benefits"},
        {"q": "perks", "lang": "en", "registry": "ca", "topic": "registry-overview"},
    ]
    # a question file like training/*.jsonl: kb train can learn from it once reviewed and committed
    topics = load_knowledge(content / "knowledge").topics("ct")
    (example,) = train.file_examples([exported], "ct", topics)
    assert (example.text, example.topic) == ("are there any perks for members", "ct-benefits")
    only_ct = registry_bot("kb", "labels", "export", "--registry", "ct", **place)
    assert [json.loads(line)["q"] for line in only_ct.out.splitlines()] == ["are there any perks for members"]


def test_labels_list_without_a_database_lists_none(tmp_path: Path) -> None:
    content = copy_content(tmp_path / "content")
    missing = tmp_path / "registry-bot.db"
    ran = registry_bot("kb", "labels", "list", content=content, database=f"sqlite+aiosqlite:///{missing}")
    assert ran.code == 0 and ran.out == "no labels\n"
    assert not missing.exists()


@pytest.fixture(autouse=True)
def _checkout_models_untouched() -> Iterator[None]:
    """No test here writes to the checkout's models/."""
    before = {path.name: path.stat().st_mtime_ns for path in (PROJECT_DIR / "models").iterdir()}
    yield
    assert {path.name: path.stat().st_mtime_ns for path in (PROJECT_DIR / "models").iterdir()} == before
