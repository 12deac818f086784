"""``registry-bot bench``: the assistant's speed, measured in-process with simulated members.

Simulated members talk to ``Engine.handle`` the way a channel would: article questions in English,
Spanish and Chinese (the questions of ``eval/questions.jsonl`` and ``eval/questions-more.jsonl``) and
complete flows (withdraw from a training, an audit request with a document, find my Registry ID), each flow
starting with the real identity check (Registry ID, e-mail, the code read from the outbox table). Many
conversations are in flight at once; a fixed number of turns run inside the engine at the same time.

For each database (a temporary SQLite file, and a PostgreSQL schema of its own when a server is
reachable) three phases run: article turns alone, flow turns alone, and the mix (about 70 % article
turns). Each reports turns per second, p50/p95/p99 latency of a turn (the time ``Engine.handle`` takes)
and the SQL statements a turn sends. Retrieval alone (the topic model and the answer rule) is measured
separately.

The article phase's limit runs on the same data: the statements of each article turn through the plain
driver (sqlite3, asyncpg) around one search, with the same members and concurrency (``limit_members``);
``of_limit`` is the share of it the engine reaches. Then, over HTTP, a real ``registry-bot serve`` on
127.0.0.1 answers simulated web visitors (``bench_http``); ``of_in_process`` is its share of the in-process
article turns. Each ratio compares slices of about a second taken in turn (``alternate``), so the speed of
a shared machine, which drifts, weighs on both sides alike.

Targets on one core: retrieval 5,000 questions/s; article turns 1,000/s with p99 under 5 ms on SQLite;
flow turns 300/s on PostgreSQL. Nothing here is a test: the figures depend on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import text as textutil
from bot.app import App, load_knowledge
from bot.bench_http import alternate, bench_http
from bot.bench_limit import ArticleLimit, Said
from bot.config import Settings
from bot.intents import Understander, Understanding
from bot.messages import Attachment, Inbound, Reply
from bot.registry.models import Enrollment, Member, OutboxMessage, Training
from bot.registry.session import make_engine
from bot.understanding.message import Message
from bot.understanding.store import load_models

T = TypeVar("T")

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
QUESTION_FILES = ("eval/questions.jsonl", "training/questions-more.jsonl")
ARTICLE_SHARE = 0.7  # of the mixed phase's turns
FLOW_TURNS = (6, 10, 2)  # turns of the withdrawal, audit request and Registry ID scripts
WITHDRAWABLE = ("T-401", "T-403")  # demo trainings whose sponsors let members withdraw themselves
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TARGETS = {
    "retrieval_questions_per_s": 5000,
    "sqlite_article_turns_per_s": 1000,
    "sqlite_article_p99_ms": 5.0,
    "postgresql_flow_turns_per_s": 300,
}


def default_postgres_url() -> str:
    return os.environ.get("REGISTRY_BOT_BENCH_POSTGRES_URL") or LOCAL_POSTGRES


@dataclass
class Options:
    seconds: float = 4.0  # length of each measured phase
    members: int = 200  # simulated members with a conversation in flight
    # turns running inside the engine at the same time; None: 1 on SQLite (its statements run on the event
    # loop's thread, so turns run one after another anyway: more at once add only their waiting to each
    # other's latency) and 4 on PostgreSQL (the server works on one turn while the bench goes on with another)
    concurrency: int | None = None
    postgres_url: str | None = None  # None: SQLite only
    pin: bool = True  # run on one CPU core
    seed: int = 1
    core: int | None = None  # the CPU core the bench ran on, once pinned


@dataclass
class Question:
    text: str
    lang: str


class FlowFailed(Exception):
    """A scripted flow did not go the way it should (the bench reports it; it should never happen)."""


# --- measurements -------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"article": [], "flow": []})
    statements: int = 0
    counted_turns: int | None = None  # the turns ``statements`` were counted over, when not these
    errors: int = 0
    flows_completed: int = 0
    elapsed: float = 0.0

    @classmethod
    def combined(cls, parts: list[Phase]) -> Phase:
        """The slices of one phase (see ``alternate``) as one phase."""
        whole = cls(elapsed=sum(part.elapsed for part in parts))
        for part in parts:
            for kind, times in part.latencies.items():
                whole.latencies[kind].extend(times)
            whole.statements += part.statements
            whole.errors += part.errors
            whole.flows_completed += part.flows_completed
        return whole

    def turns(self) -> int:
        return sum(len(times) for times in self.latencies.values())

    def block(self, kinds: tuple[str, ...]) -> dict[str, Any]:
        samples = sorted(itertools.chain.from_iterable(self.latencies[k] for k in kinds))
        turns = len(samples)
        counted = turns if self.counted_turns is None else self.counted_turns
        out: dict[str, Any] = {
            "turns_per_s": round(turns / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": _percentile(samples, 0.50),
            "p95_ms": _percentile(samples, 0.95),
            "p99_ms": _percentile(samples, 0.99),
            "turns": turns,
            "statements_per_turn": round(self.statements / counted, 2) if counted else 0.0,
            "errors": self.errors,
        }
        if "flow" in kinds:
            out["flows_completed"] = self.flows_completed
        if len(kinds) > 1:
            out["article_share"] = round(len(self.latencies["article"]) / turns, 3) if turns else 0.0
        return out


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 3)


def limit_block(article: dict[str, Any], limit: Phase) -> dict[str, Any]:
    """The limit's figures for the article phase's block: its turns/s, statements per turn, and the share
    of it the engine's article turns reach (``of_limit``)."""
    measured = limit.block(("article",))
    ceiling = measured["turns_per_s"]
    return {
        "limit_turns_per_s": ceiling,
        "limit_statements_per_turn": measured["statements_per_turn"],
        "of_limit": round(article["turns_per_s"] / ceiling, 3) if ceiling else 0.0,
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def pin_to_one_core() -> int | None:
    """Run this process (and the threads it starts from now on) on one CPU; the core, or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    core = cores[0]
    os.sched_setaffinity(0, {core})
    return core


# --- questions ------------------------------------------------------------------------------------------


def load_questions(root: Path, registry: str = "ca") -> list[Question]:
    """The article questions of the evaluation files (all three languages, out-of-scope ones too)."""
    questions: list[Question] = []
    for name in QUESTION_FILES:
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("registry", registry) == registry:
                questions.append(Question(record["q"], record.get("lang", "en")))
    return questions


def bench_retrieval(
    understander: Understander, registry: str, questions: list[Question], seconds: float
) -> dict[str, Any]:
    """The topic model and the answer rule alone (``Understander.search``), over and over the questions.

    The cache of normalized messages is emptied before each pass, so every question is read afresh.
    """
    for question in questions:  # warm up
        understander.search(Message.of(question.text, question.lang), registry)
    done, elapsed = 0, 0.0
    while elapsed < seconds:
        textutil.normalize.cache_clear()
        started = time.perf_counter()
        for question in questions:
            understander.search(Message.of(question.text, question.lang), registry)
        elapsed += time.perf_counter() - started
        done += len(questions)
    return {"questions_per_s": round(done / elapsed, 1), "questions": done}


# --- simulated members -------------------------------------------------------------------------------------


class Pool:
    """Synthetic registry members, each enrolled in the withdrawable demo trainings; handed out in turn."""

    def __init__(self, ids: list[tuple[int, str, str]]) -> None:
        self.members = ids  # (member id, registry id, e-mail)
        self._next = itertools.count()
        self.reused: set[int] = set()

    def take(self) -> tuple[int, str, str]:
        index = next(self._next) % len(self.members)
        return self.members[index]


async def add_members(app: App, count: int) -> Pool:
    """Insert ``count`` synthetic members (Registry IDs 9xxxxxxx) with their enrollments."""
    rows = [
        {
            "registry_key": app.profile.key,
            "registry_id": f"9{n:07d}",
            "first_name": "Bench",
            "last_name": f"Member {n}",
            "email": f"bench{n}@example.org",
            "preferred_language": ("en", "es", "zh_Hans")[n % 3],
            "role": "Teacher",
        }
        for n in range(count)
    ]
    async with app.sessionmaker() as session, session.begin():
        await session.execute(insert(Member), rows)
        found = await session.execute(
            select(Member.id, Member.registry_id, Member.email).where(Member.registry_id.like("9%"))
        )
        members = [(int(i), str(r), str(e)) for i, r, e in found.all()]
        trainings = (await session.execute(select(Training.id).where(Training.key.in_(WITHDRAWABLE)))).all()
        enrollments = [
            {"member_id": member_id, "training_id": training_id, "status": "enrolled"}
            for member_id, _, _ in members
            for (training_id,) in trainings
        ]
        await session.execute(insert(Enrollment), enrollments)
    return Pool(sorted(members))


class Members:
    """Simulated members with conversations in flight; a fixed number of turns run at the same time.

    Each phase times its turns inside the semaphore (the turn's own time, not its wait for a free slot).
    ``ask`` is one article question; subclasses say what a turn is.
    """

    channel_prefix = "bench"

    def __init__(self, options: Options, concurrency: int) -> None:
        self.options = options
        self.phase = Phase()
        self.recording = False
        self.concurrency = concurrency
        self.semaphore = asyncio.Semaphore(concurrency)
        self._users = itertools.count()
        self._deliveries = itertools.count()
        self.channel = f"{self.channel_prefix}-{uuid.uuid4().hex[:6]}"

    def new_user(self) -> str:
        return f"m{next(self._users)}"

    def new_delivery(self) -> str:
        return f"d{next(self._deliveries)}"

    async def timed(self, kind: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` as one turn of ``kind``: at most ``concurrency`` at once, timed when recording."""
        async with self.semaphore:
            started = time.perf_counter()
            try:
                outcome = await call()
            except Exception:
                if self.recording:
                    self.phase.errors += 1
                raise
            took = (time.perf_counter() - started) * 1000
        if self.recording:
            self.phase.latencies[kind].append(took)
        return outcome

    async def ask(self, user: str, question: Question) -> None:
        """One article question of ``user``'s conversation."""
        raise NotImplementedError

    async def flow(self, number: int) -> None:
        """One complete flow (script ``number`` modulo the scripts)."""
        raise NotImplementedError

    async def questions(self, questions: Iterator[Question], count: int, deadline: float) -> None:
        """One member asks up to ``count`` article questions in one conversation (none after ``deadline``)."""
        user = self.new_user()
        for _ in range(count):
            if time.perf_counter() >= deadline:
                return
            await self.ask(user, next(questions))

    async def run(self, mode: str, seconds: float, questions: list[Question], *, record: bool) -> Phase:
        """``mode`` article, flow or mixed; simulated members keep going until the time is up."""
        self.phase, self.recording = Phase(), record
        deadline = time.perf_counter() + seconds
        rng = random.Random(self.options.seed)
        shuffled = questions[:]
        rng.shuffle(shuffled)
        stream = itertools.cycle(shuffled)
        flows = itertools.count()
        planned = {"article": 0, "flow": 0}

        async def member() -> None:
            while time.perf_counter() < deadline:
                if mode == "article":
                    await self.questions(stream, rng.randint(1, 5), deadline)
                elif mode == "flow":
                    await self.flow(next(flows))
                elif planned["article"] < ARTICLE_SHARE * (planned["article"] + planned["flow"]):
                    # the share is kept on the turns members have set out to send, not those sent yet
                    count = rng.randint(1, 5)
                    planned["article"] += count
                    await self.questions(stream, count, deadline)
                else:
                    number = next(flows)
                    planned["flow"] += FLOW_TURNS[number % 3]
                    await self.flow(number)

        started = time.perf_counter()
        results = await asyncio.gather(
            *(member() for _ in range(self.options.members)), return_exceptions=True
        )
        self.phase.elapsed = time.perf_counter() - started
        self.recording = False
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return self.phase


class Harness(Members):
    """Drives the engine: times turns, counts their statements, reads codes from the outbox on the side.

    Statements are counted in a short pass of their own before each timed phase: a listener told of every
    statement would slow the timed turns, and the limit's turns have none."""

    def __init__(self, app: App, inspector: AsyncEngine, pool: Pool, options: Options) -> None:
        super().__init__(options, options.concurrency or (1 if app.database.dialect.name == "sqlite" else 4))
        self.app = app
        self.inspector = inspector  # a second engine: what the harness reads is not the turn's work
        self.pool = pool
        #: what the engine answered to each article question (for the limit turns, see ``bench_limit``)
        self.answers: dict[str, list[Reply]] = {}

    def _count(self, *_args: Any) -> None:
        if self.recording:
            self.phase.statements += 1

    async def run(self, mode: str, seconds: float, questions: list[Question], *, record: bool) -> Phase:
        if not record:
            return await super().run(mode, seconds, questions, record=False)
        counting = await self.count_statements(mode, seconds, questions)
        phase = await super().run(mode, seconds, questions, record=True)
        return self.counted(phase, counting)

    async def count_statements(self, mode: str, seconds: float, questions: list[Question]) -> Phase:
        """A short pass of ``mode`` that counts the statements its turns send (see ``counted``)."""
        database = self.app.database.sync_engine
        event.listen(database, "before_cursor_execute", self._count)
        try:
            return await super().run(mode, min(1.0, seconds / 4), questions, record=True)
        finally:
            event.remove(database, "before_cursor_execute", self._count)

    async def timed_slice(self, mode: str, seconds: float, questions: list[Question]) -> Phase:
        """``mode`` for ``seconds``, timed, statements not counted: one slice of a phase."""
        return await super().run(mode, seconds, questions, record=True)

    @staticmethod
    def counted(phase: Phase, counting: Phase) -> Phase:
        """``phase`` with the statements per turn of its counting pass."""
        phase.statements = counting.statements
        phase.counted_turns = counting.turns()
        return phase

    async def turn(
        self,
        kind: str,
        user: str,
        text: str = "",
        *,
        payload: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> list[Reply]:
        inbound = Inbound(
            channel=self.channel,
            user_id=user,
            delivery_id=self.new_delivery(),
            text=text,
            payload=payload,
            attachments=attachments,
        )
        return await self.timed(kind, lambda: self.app.engine.handle(inbound))

    async def ask(self, user: str, question: Question) -> None:
        replies = await self.turn("article", user, question.text)
        self.answers.setdefault(question.text, replies)

    async def code_for(self, email: str) -> str:
        async with self.inspector.connect() as connection:
            body = (
                await connection.execute(
                    select(OutboxMessage.body)
                    .where(OutboxMessage.recipient == email)
                    .order_by(OutboxMessage.id.desc())
                    .limit(1)
                )
            ).scalar_one()
        found = re.search(r"\b(\d{6})\b", body)
        if found is None:
            raise FlowFailed("no code in the e-mail")
        return found.group(1)

    async def reset_enrollments(self, member_id: int) -> None:
        async with self.inspector.begin() as connection:
            await connection.execute(
                update(Enrollment).where(Enrollment.member_id == member_id).values(status="enrolled")
            )

    # -- scripts ---------------------------------------------------------------------------------------

    async def verified(self, user: str, flow: str) -> tuple[int, str, str, list[Reply]]:
        """Start ``flow`` by its button, then verify: Registry ID, e-mail, the code from the outbox."""
        member = self.pool.take()
        member_id, registry_id, email = member
        if member_id in self.pool.reused and flow == "withdraw-training":
            await self.reset_enrollments(member_id)
        self.pool.reused.add(member_id)
        await self.turn("flow", user, payload=f"flow:{flow}")
        await self.turn("flow", user, registry_id)
        await self.turn("flow", user, email)
        replies = await self.turn("flow", user, await self.code_for(email))
        return member_id, registry_id, email, replies

    async def withdrawal(self) -> None:
        user = self.new_user()
        _, _, _, replies = await self.verified(user, "withdraw-training")
        choice = _choice(replies, "Supporting Dual Language Learners", "Desarrollo del Lenguaje")
        replies = await self.turn("flow", user, payload=choice)
        replies = await self.turn("flow", user, payload=_choice(replies, "Yes"))
        _expect(replies, "Withdrawn")

    async def audit(self) -> None:
        user = self.new_user()
        _, _, _, replies = await self.verified(user, "audit-request")
        replies = await self.turn("flow", user, payload=_choice(replies, "Continue"))
        replies = await self.turn("flow", user, payload=_choice(replies, "Training"))
        await self.turn(
            "flow", user, "The 2025 workshop on literacy is missing from my training hours report."
        )
        replies = await self.turn("flow", user, attachments=(Attachment("certificate.pdf", PDF),))
        replies = await self.turn("flow", user, payload=_choice(replies, "Done"))
        replies = await self.turn("flow", user, payload=_choice(replies, "Yes"))
        _expect(replies, "AUD-")

    async def registry_id(self) -> None:
        user = self.new_user()
        _, _, email = self.pool.take()
        await self.turn("flow", user, payload="flow:find-registry-id")
        replies = await self.turn("flow", user, email)
        _expect(replies, "Registry ID")

    async def flow(self, number: int) -> None:
        script = (self.withdrawal, self.audit, self.registry_id)[number % 3]
        await script()
        if self.recording:
            self.phase.flows_completed += 1


class LimitHarness(Members):
    """The article phase again, each turn an ``ArticleLimit`` turn (plain driver, same statements, one
    search) instead of ``Engine.handle``: same members, questions, order and concurrency."""

    channel_prefix = "limit"

    def __init__(self, limit: ArticleLimit, options: Options, concurrency: int) -> None:
        super().__init__(options, concurrency)
        self.limit = limit

    async def ask(self, user: str, question: Question) -> None:
        turn = functools.partial(
            self.limit.turn,
            channel=self.channel,
            user_id=user,
            delivery_id=self.new_delivery(),
            text=question.text,
            lang=question.lang,
        )
        statements = await self.timed("article", turn)
        if self.recording:
            self.phase.statements += statements


def said_by(harness: Harness, questions: list[Question]) -> Callable[[str, Understanding], Said]:
    """What the engine answered to a question in ``harness``'s phases; for a question it was not asked
    (a short run), what it answered to another question understood the same way."""
    understander = harness.app.engine.router.understander
    registry = harness.app.profile.key
    by_question = {text: Said.of(replies) for text, replies in harness.answers.items()}
    by_meaning: dict[tuple[str, str | None], Said] = {}
    for question in questions:
        kept = by_question.get(question.text)
        if kept is None:
            continue
        understood = understander.understand(Message.of(question.text, question.lang), registry)
        by_meaning.setdefault((understood.kind, understood.name), kept)
        by_meaning.setdefault((understood.kind, None), kept)
    fallback = next(iter(by_question.values()), Said.of([]))

    def said(text: str, understanding: Understanding) -> Said:
        return (
            by_question.get(text)
            or by_meaning.get((understanding.kind, understanding.name))
            or by_meaning.get((understanding.kind, None))
            or fallback
        )

    return said


@contextlib.asynccontextmanager
async def limit_members(
    harness: Harness, url: str, schema: str | None, questions: list[Question], options: Options
) -> AsyncIterator[LimitHarness]:
    """The article phase's limit on ``harness``'s database, warmed up as the engine was; closed on exit."""
    app = harness.app
    limit = await ArticleLimit.open(
        url,
        app.database.dialect,
        schema=schema,
        concurrency=harness.concurrency,
        understander=app.engine.router.understander,
        registry=app.profile.key,
        said=said_by(harness, questions),
    )
    try:
        members = LimitHarness(limit, options, harness.concurrency)
        await members.run("article", min(1.0, options.seconds / 2), questions, record=False)  # warm up
        yield members
    finally:
        await limit.close()


def _choice(replies: list[Reply], *labels: str) -> str:
    for reply in replies:
        for choice in reply.choices:
            if any(label.lower() in choice.label.lower() for label in labels):
                return choice.payload
    shown = [choice.label for reply in replies for choice in reply.choices]
    raise FlowFailed(f"no button {labels} among {shown}")


def _expect(replies: list[Reply], *parts: str) -> None:
    said = "\n".join(reply.text for reply in replies)
    if not any(part in said for part in parts):
        raise FlowFailed(f"expected {parts} in {said[:200]!r}")


# --- one database -------------------------------------------------------------------------------------------


#: in-process article turns for the seconds given: how many ran, in how many seconds
InProcess = Callable[[float], Awaitable[tuple[int, float]]]
#: what runs beside the in-process phases, slices of their article turns at hand, before the app closes
Beside = Callable[[InProcess], Awaitable[None]]


async def bench_database(
    settings: Settings,
    registry: str,
    url: str,
    schema: str | None,
    questions: list[Question],
    options: Options,
    beside: Beside | None = None,
) -> dict[str, Any]:
    """The phases on one database. The article phase alternates with its limit, slice by slice
    (``alternate``); then ``beside`` (the HTTP measurement) runs with slices of article turns at hand; then
    the flow and mixed phases."""
    app = App.build(
        settings.model_copy(update={"database_url": url, "database_schema": schema}), registry=registry
    )
    inspector = make_engine(url, schema=schema)
    try:
        await app.migrate()
        await app.seed_demo()
        pool = await add_members(app, max(200, options.members * 10))
        harness = Harness(app, inspector, pool, options)
        # as ``serve`` does once it has started: what was built so far lives on, and is kept out of the
        # collections the measured turns cause (each would walk it again, the more so the more objects a
        # turn makes: the engine's turns more than the limit's)
        gc.collect()
        gc.freeze()
        await harness.run("mixed", min(1.0, options.seconds / 2), questions, record=False)  # warm up
        out: dict[str, Any] = {}

        async def article(seconds: float) -> Phase:
            return await harness.timed_slice("article", seconds, questions)

        counting = await harness.count_statements("article", options.seconds, questions)
        async with limit_members(harness, url, schema, questions, options) as limit:

            async def limit_slice(seconds: float) -> Phase:
                return await limit.run("article", seconds, questions, record=True)

            engine_slices, limit_slices = await alternate(article, limit_slice, options.seconds)
        out["article"] = harness.counted(Phase.combined(engine_slices), counting).block(("article",))
        out["article"].update(limit_block(out["article"], Phase.combined(limit_slices)))
        if beside is not None:  # next to the article phase, on the data it left, before the flows add theirs

            async def in_process(seconds: float) -> tuple[int, float]:
                phase = await article(seconds)
                return phase.turns(), phase.elapsed

            await beside(in_process)
        for mode, kinds in (("flow", ("flow",)), ("mixed", ("article", "flow"))):
            phase = await harness.run(mode, options.seconds, questions, record=True)
            out[mode] = phase.block(kinds)
        out["peak_rss_mb"] = peak_rss_mb()
        out["setup"] = {
            "cpu_core": options.core,
            "members_in_flight": options.members,
            "concurrent_turns": harness.concurrency,
            "seconds_per_phase": options.seconds,
            "synthetic_members": len(pool.members),
            "article_slices": len(engine_slices),
        }
        return out
    finally:
        gc.unfreeze()
        await inspector.dispose()
        await app.close()


async def postgres_reachable(url: str, timeout: float = 3.0) -> bool:
    engine = make_engine(url)
    try:
        async with asyncio.timeout(timeout), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def _with_schema(url: str, run: Callable[[str], Awaitable[T]]) -> T:
    """Run ``run(schema)`` in a PostgreSQL schema made for it and dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            return await run(schema)
        finally:
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def run_bench(
    settings: Settings,
    options: Options,
    *,
    registry: str = "ca",
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole benchmark: retrieval; SQLite, and PostgreSQL when ``options.postgres_url`` is reachable,
    each in-process (with the limit of its article turns) and then over HTTP (``http``)."""
    say = report or (lambda _message: None)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    options.core = pin_to_one_core() if options.pin else None
    # over HTTP the server gets the bench's core, and the visitors another one when there is one
    client_core = next((core for core in cores if core != options.core), None) if options.pin else None
    questions = load_questions(settings.content_dir, registry)
    knowledge = load_knowledge(settings.content_dir / "knowledge")
    understander = Understander(knowledge, load_models(settings.content_dir, (registry,)))
    result: dict[str, Any] = {}
    say("retrieval ...")
    result["retrieval"] = bench_retrieval(understander, registry, questions, min(options.seconds, 3.0))
    http: dict[str, Any] = {}

    def over_http(database: str, url: str, folder: Path) -> Beside:
        """The HTTP measurement on a fresh database: an SQLite file, or a PostgreSQL schema of its own."""

        async def on(schema: str | None, in_process: InProcess) -> None:
            say(f"http ({database}) ...")
            http[database] = await bench_http(
                settings,
                registry=registry,
                database_url=url,
                schema=schema,
                folder=folder,
                questions=questions,
                visitors=options.members,
                seconds=options.seconds,
                server_core=options.core,
                client_core=client_core,
                in_process=in_process,
            )

        async def measure(in_process: InProcess) -> None:
            if database == "sqlite":
                await on(None, in_process)
            else:
                await _with_schema(url, lambda schema: on(schema, in_process))

        return measure

    with tempfile.TemporaryDirectory(prefix="registry-bot-bench-") as folder:
        say("sqlite ...")
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        served = over_http("sqlite", f"sqlite+aiosqlite:///{Path(folder) / 'http.db'}", Path(folder))
        result["sqlite"] = await bench_database(settings, registry, url, None, questions, options, served)
        if options.postgres_url:
            if await postgres_reachable(options.postgres_url):
                say("postgresql ...")
                pg_url = options.postgres_url
                served = over_http("postgresql", pg_url, Path(folder))

                async def on_postgres(schema: str) -> dict[str, Any]:
                    return await bench_database(
                        settings, registry, pg_url, schema, questions, options, served
                    )

                result["postgresql"] = await _with_schema(pg_url, on_postgres)
            else:
                say(f"postgresql: no server reachable at {options.postgres_url}; skipped")
    result["http"] = http
    return result


def targets(result: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(what, measured, target, met) for each speed target the result can say something about."""
    checks: list[tuple[str, float, float, bool]] = []
    qps = result["retrieval"]["questions_per_s"]
    checks.append(("retrieval questions/s", qps, TARGETS["retrieval_questions_per_s"], qps >= 5000))
    article = result["sqlite"]["article"]
    checks.append(("sqlite article turns/s", article["turns_per_s"], 1000, article["turns_per_s"] >= 1000))
    checks.append(("sqlite article p99 ms", article["p99_ms"], 5.0, article["p99_ms"] < 5.0))
    if "postgresql" in result:
        flow = result["postgresql"]["flow"]
        checks.append(("postgresql flow turns/s", flow["turns_per_s"], 300, flow["turns_per_s"] >= 300))
    return checks


def format_text(result: dict[str, Any]) -> str:
    """The result as a small table, with the targets."""
    lines = [f"retrieval: {result['retrieval']['questions_per_s']:,.0f} questions/s"]
    for database in ("sqlite", "postgresql"):
        if database not in result:
            continue
        setup, peak = result[database]["setup"], result[database]["peak_rss_mb"]
        lines.append(
            f"{database} (peak RSS {peak} MB, {setup['members_in_flight']} members in flight, "
            f"{setup['concurrent_turns']} turn(s) at once, {setup['seconds_per_phase']} s per phase)"
        )
        for mode in ("article", "flow", "mixed"):
            block = result[database][mode]
            lines.append(
                f"  {mode:8} {block['turns_per_s']:8,.0f} turns/s  p50 {block['p50_ms']:6.2f} ms  "
                f"p95 {block['p95_ms']:6.2f} ms  p99 {block['p99_ms']:6.2f} ms  "
                f"{block['statements_per_turn']:5.1f} statements/turn  errors {block['errors']}"
            )
            if "limit_turns_per_s" in block:
                driver = "sqlite3" if database == "sqlite" else "asyncpg"
                lines.append(
                    f"  {'limit':8} {block['limit_turns_per_s']:8,.0f} turns/s  the same statements through "
                    f"{driver} and one search; article turns reach {block['of_limit']:.0%} of it"
                )
    http = result.get("http", {})
    if http:
        setup = next(iter(http.values()))["setup"]
        cores = (
            f"server on core {setup['server_core']}, visitors on "
            + (f"core {setup['client_core']}" if setup["client_core"] is not None else "the same core")
            if setup["server_core"] is not None
            else "not pinned"
        )
        lines.append(
            f"http: registry-bot serve on {setup['host']} ({setup['visitors']} visitors, "
            f"{setup['requests_in_flight']} requests in flight, rate limits off, {cores})"
        )
        for database, block in http.items():
            lines.append(
                f"  {database:10} {block['turns_per_s']:6,.0f} turns/s  p50 {block['p50_ms']:6.2f} ms  "
                f"p99 {block['p99_ms']:6.2f} ms  in-process {block['in_process_turns_per_s']:,.0f} turns/s: "
                f"{block['of_in_process']:.0%} of it  errors {block['errors']}"
            )
    core = result["sqlite"]["setup"]["cpu_core"]
    lines.append(f"pinned to CPU core {core}" if core is not None else "not pinned to a core")
    for what, measured, target, met in targets(result):
        lines.append(f"target {what}: {measured:,.1f} (target {target:,}) {'met' if met else 'MISSED'}")
    return "\n".join(lines)
