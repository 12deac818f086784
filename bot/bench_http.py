"""The web chat over HTTP: a real ``registry-bot serve`` on 127.0.0.1, loaded by simulated visitors.

The server is a process of its own (``python -m bot serve``) on a fresh database, with the web chat alone
and its rate limits off (every visitor comes from 127.0.0.1, which the per-address limit would stop at 30
messages a minute). Visitors post the bench's article questions to ``/api/messages`` as the page does: JSON
with a new ``delivery_id`` each, and the cookie the server set on the visitor's first message. Each visitor
asks one to five questions, then leaves and a new one comes, as the in-process members do. Throughput and
latency are measured at the client, a fixed number of requests in flight.

The in-process article turns it is compared with are measured in slices taken in turn with the visitors'
slices (``alternate``): a shared machine's speed drifts by a tenth within a minute, and two figures taken
twenty seconds apart would compare the drift as much as the two paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import aiohttp

from bot.config import PROJECT_DIR, Settings

logger = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")

HOST = "127.0.0.1"  # never another interface: the bench's server is for this machine only
IN_FLIGHT = 4  # requests the visitors have sent and wait for, at most, at any time
START_TIMEOUT = 60.0  # seconds for the server to answer /healthz
STOP_TIMEOUT = 30.0  # seconds for a graceful stop before the server is killed
REQUEST_TIMEOUT = 30.0
#: the server's rate limits, off: per chat user (a visitor) and per client address (all visitors share one)
RATE_LIMITS_OFF = {
    "REGISTRY_BOT_RATE_LIMIT_PER_MINUTE": "0",
    "REGISTRY_BOT_CLIENT_RATE_LIMIT_PER_MINUTE": "0",
}


class Asked(Protocol):
    """A question of the bench (``bench.Question``)."""

    text: str
    lang: str


def free_port() -> int:
    """A port of 127.0.0.1 free right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def pin_process(pid: int, core: int) -> None:
    """Run every thread of process ``pid`` (and those it starts afterwards) on CPU ``core``."""
    tasks = Path(f"/proc/{pid}/task")
    ids = [int(task.name) for task in tasks.iterdir()] if tasks.is_dir() else [pid]
    for task in ids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(task, {core})


class ServeProcess:
    """``python -m bot serve`` on a free port of 127.0.0.1 and on ``database_url``, stopped on exit.

    Only what the bench sets reaches it: no ``REGISTRY_BOT_*`` variable of this process (no Telegram or
    Slack token), and no ``.env`` file (it runs in ``folder``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: str,
        database_url: str,
        schema: str | None,
        folder: Path,
        core: int | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.core = core
        self.log = folder / f"serve-{self.port}.log"
        self.folder = folder
        environment = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_BOT_")}
        environment.update(
            RATE_LIMITS_OFF,
            PYTHONPATH=str(PROJECT_DIR),
            REGISTRY_BOT_REGISTRY=registry,
            REGISTRY_BOT_DATABASE_URL=database_url,
            REGISTRY_BOT_CONTENT_DIR=str(settings.content_dir),
            REGISTRY_BOT_DEMO_DATA=str(settings.demo_data),
            REGISTRY_BOT_WEB_SECRET=secrets.token_hex(16),
            REGISTRY_BOT_LOG_LEVEL="WARNING",
        )
        if schema:
            environment["REGISTRY_BOT_DATABASE_SCHEMA"] = schema
        self.environment = environment
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> ServeProcess:
        command = [sys.executable, "-m", "bot", "serve", "--host", HOST, "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=self.environment, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            if self.core is not None:
                pin_process(self.process.pid, self.core)
            await self._ready()
            if self.core is not None:  # threads started while it loaded (numpy's) run there too
                pin_process(self.process.pid, self.core)
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def _ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"registry-bot serve ended at start: {self._tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"registry-bot serve did not answer within {START_TIMEOUT:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        """SIGTERM (in-flight requests finish), then SIGKILL after ``STOP_TIMEOUT``; the process is reaped."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            logger.warning("registry-bot serve did not stop within %.0f s: killed", STOP_TIMEOUT)
            process.kill()
            process.wait()


async def alternate(
    first: Callable[[float], Awaitable[A]], second: Callable[[float], Awaitable[B]], seconds: float
) -> tuple[list[A], list[B]]:
    """Each of ``first(s)`` and ``second(s)`` for ``seconds`` in all, in slices of about a second taken in
    turn, A B B A A B B A …, so that a machine getting faster or slower meanwhile weighs on both alike (an
    even number of slices each: with an odd one the side that goes first would sit earlier on average)."""
    slices = max(2, 2 * round(seconds / 2))
    length = seconds / slices
    firsts: list[A] = []
    others: list[B] = []
    for number in range(slices):
        if number % 2 == 0:
            firsts.append(await first(length))
            others.append(await second(length))
        else:
            others.append(await second(length))
            firsts.append(await first(length))
    return firsts, others


# --- visitors ---------------------------------------------------------------------------------------------


@dataclass
class Visits:
    """What the visitors measured: each answered message's time at the client, and the failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @classmethod
    def combined(cls, parts: Sequence[Visits]) -> Visits:
        """The slices of one measurement as one."""
        return cls(
            latencies=[took for part in parts for took in part.latencies],
            errors=sum(part.errors for part in parts),
            elapsed=sum(part.elapsed for part in parts),
        )

    def block(self) -> dict[str, Any]:
        samples = sorted(self.latencies)

        def percentile(q: float) -> float:
            return round(samples[min(len(samples) - 1, int(q * len(samples)))], 3) if samples else 0.0

        return {
            "turns_per_s": round(len(samples) / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "p99_ms": percentile(0.99),
            "turns": len(samples),
            "errors": self.errors,
        }


async def visit(
    url: str,
    questions: Sequence[Asked],
    *,
    visitors: int,
    seconds: float,
    in_flight: int = IN_FLIGHT,
    seed: int = 1,
) -> Visits:
    """``visitors`` visitors at once ask the questions (shuffled with ``seed``) for ``seconds``."""
    visits = Visits()
    rng = random.Random(seed)
    shuffled = list(questions)
    rng.shuffle(shuffled)
    stream = itertools.cycle(shuffled)
    slots = asyncio.Semaphore(in_flight)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=in_flight)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    # no shared cookie jar: each visitor keeps its own cookie, as its own browser would
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def say(cookie: str, question: Asked) -> str:
            body = {"delivery_id": uuid.uuid4().hex, "text": question.text, "lang": question.lang}
            headers = {"Cookie": cookie} if cookie else {}
            async with slots:
                started = time.perf_counter()
                try:
                    async with session.post(f"{url}/api/messages", json=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                        given = "; ".join(
                            f"{name}={morsel.value}" for name, morsel in response.cookies.items()
                        )
                except (aiohttp.ClientError, TimeoutError):
                    visits.errors += 1
                    return cookie
                took = (time.perf_counter() - started) * 1000
            if status == 200:
                visits.latencies.append(took)
            else:
                visits.errors += 1
            return cookie or given

        async def visitor() -> None:
            while time.perf_counter() < deadline:
                cookie = ""  # a new visitor: the server sets the cookie on the first answer
                for _ in range(rng.randint(1, 5)):
                    if time.perf_counter() >= deadline:
                        return
                    cookie = await say(cookie, next(stream))

        started = time.perf_counter()
        await asyncio.gather(*(visitor() for _ in range(visitors)))
        visits.elapsed = time.perf_counter() - started
    return visits


async def bench_http(
    settings: Settings,
    *,
    registry: str,
    database_url: str,
    schema: str | None,
    folder: Path,
    questions: Sequence[Asked],
    visitors: int,
    seconds: float,
    server_core: int | None,
    client_core: int | None,
    in_process: Callable[[float], Awaitable[tuple[int, float]]],
) -> dict[str, Any]:
    """Start the server, warm it up, measure; the block for the ``http`` object of the bench's result.

    ``in_process(s)`` runs the in-process article turns for ``s`` seconds and says how many it ran in how
    long; its slices alternate with the visitors' (``alternate``), the bench's process on ``server_core``
    for its own and on ``client_core`` for the visitors'.
    """
    previous = os.sched_getaffinity(0) if client_core is not None else None
    client = {client_core} if client_core is not None else None

    def on(cores: set[int] | None) -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)

    async def over_http(length: float) -> Visits:
        on(client)
        return await visit(server.url, questions, visitors=visitors, seconds=length)

    async def inside(length: float) -> tuple[int, float]:
        on(previous)
        return await in_process(length)

    try:
        async with ServeProcess(
            settings,
            registry=registry,
            database_url=database_url,
            schema=schema,
            folder=folder,
            core=server_core,
        ) as server:
            on(client)
            await visit(server.url, questions, visitors=visitors, seconds=min(1.0, seconds / 2))  # warm up
            slices, in_process_slices = await alternate(over_http, inside, seconds)
    finally:
        on(previous)
    visits = Visits.combined(slices)
    turns = sum(count for count, _ in in_process_slices)
    elapsed = sum(took for _, took in in_process_slices)
    in_process_turns_per_s = round(turns / elapsed, 1) if elapsed else 0.0
    out = visits.block()
    out["in_process_turns_per_s"] = in_process_turns_per_s
    out["of_in_process"] = (
        round(out["turns_per_s"] / in_process_turns_per_s, 3) if in_process_turns_per_s else 0.0
    )
    out["setup"] = {
        "host": HOST,
        "port": server.port,
        "server_pid": server.pid,
        "visitors": visitors,
        "requests_in_flight": IN_FLIGHT,
        "seconds": seconds,
        "slices": len(slices),
        "server_core": server_core,
        "client_core": client_core,
        "rate_limits": "off (" + ", ".join(f"{key}={value}" for key, value in RATE_LIMITS_OFF.items()) + ")",
    }
    return out
