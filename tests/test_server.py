"""``registry-bot serve``: the ASGI application, its channels' lifecycle, /healthz, and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import App
from bot.channels.web import WebChat, create_asgi
from bot.cli import _parser, serve_address
from bot.config import PROJECT_DIR, Settings
from bot.server import Channel, Services

SECRET = b"test-secret-for-the-web-chat-cookie"


class FakeChannel:
    """A channel that records its lifecycle; its one route answers after ``delay`` seconds."""

    def __init__(self, name: str, events: list[str], *, delay: float = 0.0, fail_start: bool = False) -> None:
        self.name = name
        self.events = events
        self.delay = delay
        self.fail_start = fail_start
        self.ok = True

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("cannot start")
        self.events.append(f"start {self.name}")

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")

    def healthy(self) -> bool:
        return self.ok

    def routes(self) -> list[BaseRoute]:
        async def slow(request: Request) -> Response:
            self.events.append(f"turn begins {self.name}")
            await asyncio.sleep(self.delay)
            self.events.append(f"turn ends {self.name}")
            return PlainTextResponse("done")

        return [Route(f"/{self.name}/hook", slow, methods=["POST"])]


@asynccontextmanager
async def lifespan_client(app: App, channels: Sequence[Channel]) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_asgi(app, channels)
    async with (
        asgi.router.lifespan_context(asgi),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://testserver") as client,
    ):
        yield client


@asynccontextmanager
async def running_server(
    app: App, channels: Sequence[Channel], *, graceful: float = 10
) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """uvicorn in this event loop on a free port of 127.0.0.1: (base URL, server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_asgi(app, channels),
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task
        sock.close()


# --- /healthz -----------------------------------------------------------------------------------------------


async def test_healthz_reports_the_database_and_each_channel(app: App) -> None:
    events: list[str] = []
    extra = FakeChannel("fake", events)
    async with lifespan_client(app, [WebChat(app, secret=SECRET), extra]) as client:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "database": "ok",
            "channels": {"web": "ok", "fake": "ok"},
            "outbox_delivery": "off",
        }
        extra.ok = False
        response = await client.get("/healthz")
        assert response.status_code == 200  # the database is up: the other channels still work
        assert response.json()["status"] == "degraded" and response.json()["channels"]["fake"] == "unhealthy"


def unreachable(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite+aiosqlite:////nonexistent-directory/registry-bot/registry.db"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://postgres@127.0.0.1:1/{rest.rsplit('/', 1)[-1]}"


async def test_healthz_is_503_when_the_database_is_unreachable(database: tuple[str, str | None]) -> None:
    url, schema = database
    down = App.build(Settings(database_url=unreachable(url), database_schema=schema))
    try:
        async with lifespan_client(down, [WebChat(down, secret=SECRET)]) as client:
            response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable" and response.json()["database"] == "unreachable"
        assert response.json()["channels"] == {"web": "ok"}
    finally:
        await down.close()


# --- channels -----------------------------------------------------------------------------------------------


async def test_channels_start_in_order_stop_in_reverse_and_mount_their_routes(app: App) -> None:
    events: list[str] = []
    async with lifespan_client(app, [FakeChannel("one", events), FakeChannel("two", events)]) as client:
        assert events == ["start one", "start two"]
        assert (await client.post("/two/hook")).text == "done"
    assert events[-2:] == ["stop two", "stop one"]


async def test_a_channel_that_fails_to_start_stops_the_others(app: App) -> None:
    events: list[str] = []
    services = Services(app, [FakeChannel("one", events), FakeChannel("two", events, fail_start=True)])
    with pytest.raises(RuntimeError):
        await services.start()
    assert events == ["start one", "stop one"]
    with pytest.raises(ValueError, match="unique"):
        Services(app, [FakeChannel("same", events), FakeChannel("same", events)])
    with pytest.raises(TypeError):

        class Odd(FakeChannel):
            def routes(self) -> list[BaseRoute]:
                return ["/not-a-route"]  # type: ignore[list-item]

        create_asgi(app, [Odd("odd", events)])


async def test_the_outbox_delivery_runs_while_serving_when_smtp_is_set(
    make_app: Callable[..., App],
) -> None:
    app = make_app(smtp_host="127.0.0.1", smtp_port=1)
    await app.migrate()
    services = Services(app, [], outbox_interval=0.05)
    try:
        await services.start()
        task = services._outbox
        assert task is not None and not task.done()
        assert (await services.health())[1]["outbox_delivery"] == "running"
        await asyncio.sleep(0.1)  # a round or two on an empty outbox
        await services.stop()
        assert task.cancelled() and services._outbox is None
    finally:
        await services.stop()
        await app.close()


async def test_shutdown_lets_the_turn_in_flight_finish_then_stops_channels(app: App) -> None:
    events: list[str] = []
    async with (
        running_server(app, [FakeChannel("slow", events, delay=0.5)]) as (url, server),
        httpx.AsyncClient() as client,
    ):
        request = asyncio.create_task(client.post(f"{url}/slow/hook"))
        while "turn begins slow" not in events:
            await asyncio.sleep(0.01)
        server.should_exit = True  # what SIGTERM does
        response = await request
    assert response.status_code == 200 and response.text == "done"
    assert events == ["start slow", "turn begins slow", "turn ends slow", "stop slow"]


# --- the command -------------------------------------------------------------------------------------------


def test_serve_parses_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 9000)
    assert serve_address(args, Settings()) == ("0.0.0.0", 9000)

    monkeypatch.setenv("REGISTRY_BOT_HOST", "127.0.0.2")
    monkeypatch.setenv("REGISTRY_BOT_PORT", "9100")
    defaults = _parser().parse_args(["serve"])
    assert serve_address(defaults, Settings()) == ("127.0.0.2", 9100)
    assert serve_address(_parser().parse_args(["serve", "--port", "9200"]), Settings()) == ("127.0.0.2", 9200)
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--port", "eighty"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_runs_the_web_chat_on_the_embedded_database_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_BOT_")}
    environment.update(
        REGISTRY_BOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        REGISTRY_BOT_PORT=str(port),
        PYTHONPATH=str(PROJECT_DIR),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert health is not None, process.communicate(timeout=10)
            assert health.status_code == 200 and health.json()["channels"] == {"web": "ok"}
            page = client.get("/")
            assert page.status_code == 200 and "registry_bot_visitor" in page.headers["set-cookie"]
            reply = client.post("/api/messages", json={"delivery_id": "first-message", "text": "hello"})
            assert reply.status_code == 200 and reply.json()["replies"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, stderr
    assert "serving web on http://127.0.0.1:" in stderr
    assert "maria" not in stderr.lower() and "hello" not in stderr  # nothing personal in the log
    assert (tmp_path / "registry.db").is_file()
