"""A local Slack Web API on 127.0.0.1: the methods the help desk app calls, each call recorded.

Point slack-sdk at it with ``base_url``; ``rate_limit_next`` makes the next call answer 429 with
Retry-After, as Slack does; ``hold`` (an event) keeps posts waiting until it is set, as a slow Slack
would. Like Slack, it refuses a message whose blocks, or a modal whose view, break Block Kit's rules
(``invalid_blocks``, ``invalid_arguments``), checked with slack_sdk's own models. ``on_call`` runs before
each answer (a test can make something else fail at that moment). Also serves ``/respond`` for
slash-command ``response_url`` replies, and runs any extra Starlette routes (the app under test) on the
same loopback server when asked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes import LoopbackServer

TEAM = "T0REGISTRY"
BOT_USER = "UBOT"
MAX_BLOCKS = 50  # a message holds at most 50 blocks


def block_kit_errors(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would refuse in a message's blocks: each block and its elements checked by slack_sdk's
    models (their ``validate_json`` does not look into an actions or context block's elements)."""
    errors = [f"{len(blocks)} blocks (at most {MAX_BLOCKS})"] if len(blocks) > MAX_BLOCKS else []
    for raw in blocks:
        try:
            block = Block.parse(raw)
            assert block is not None, f"unknown block {raw.get('type')}"
            block.validate_json()
            elements = [*(getattr(block, "elements", None) or []), getattr(block, "element", None)]
            for element in elements:
                if hasattr(element, "validate_json"):
                    element.validate_json()
        except (SlackObjectFormationError, AssertionError) as error:
            errors.append(f"{raw.get('type')}: {error}")
    return errors


def view_errors(view: dict[str, Any]) -> list[str]:
    """What Slack would refuse in a modal: the view, then each of its blocks."""
    try:
        View(**view).validate_json()
    except SlackObjectFormationError as error:
        return [str(error)]
    return block_kit_errors(view.get("blocks") or [])


@dataclass
class SlackCall:
    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.params.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    def action_ids(self) -> list[str]:
        return [e["action_id"] for b in self.blocks if b["type"] == "actions" for e in b["elements"]]


class FakeSlack:
    """A Slack Web API (and, optionally, the app under test) served by uvicorn on 127.0.0.1."""

    def __init__(self, *, names: dict[str, str] | None = None, routes: list[BaseRoute] | None = None) -> None:
        self.calls: list[SlackCall] = []
        self.names = names or {}
        self.rate_limit_next = 0
        self.server_error_next = 0
        self.hold: asyncio.Event | None = None
        self.on_call: Callable[[str], None] | None = None  # called with each method's name
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes uploaded
        self._files = itertools.count(1)
        self._ts = itertools.count(1)
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/api/respond", self._respond, methods=["POST"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
                Route("/api/{method}", self._method, methods=["POST", "GET"]),
                *(routes or []),
            ]
        )
        self._loopback = LoopbackServer(self.app)
        self.socket: FakeSocketMode | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeSlack:
        self.port = await self._loopback.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._loopback.stop()

    def called(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    async def _params(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            return dict(json.loads(body or b"{}"))
        return dict(parse_qsl(body.decode())) | dict(request.query_params)

    async def _respond(self, request: Request) -> Response:
        self.calls.append(SlackCall("respond", await self._params(request)))
        return Response("ok")

    async def _upload(self, request: Request) -> Response:
        self.uploads[request.path_params["file_id"]] = await request.body()
        return Response("OK - uploaded")

    async def _method(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await self._params(request)
        if self.hold is not None and method == "chat.postMessage":
            await self.hold.wait()
        if self.server_error_next and method != "auth.test":
            self.server_error_next -= 1
            self.calls.append(SlackCall(f"{method} (503)", params))
            return JSONResponse({"ok": False, "error": "service_unavailable"}, status_code=503)
        if self.rate_limit_next and method != "auth.test":
            self.rate_limit_next -= 1
            self.calls.append(SlackCall(f"{method} (429)", params))
            return JSONResponse(
                {"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "1"}
            )
        if self.on_call is not None:
            self.on_call(method)
        self.calls.append(SlackCall(method, params))
        if refused := self._refused(method, params):
            return JSONResponse(
                {"ok": False, "error": refused[0], "response_metadata": {"messages": refused}}
            )
        if method == "auth.test":
            return JSONResponse(
                {"ok": True, "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B1", "team": "RB"}
            )
        if method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") or f"1700000000.{next(self._ts):06d}"
            return JSONResponse({"ok": True, "channel": params.get("channel"), "ts": ts})
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._files):04d}"
            return JSONResponse(
                {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
            )
        if method == "files.completeUploadExternal":
            files = params.get("files")
            listed = json.loads(files) if isinstance(files, str) else files or []
            return JSONResponse(
                {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}
            )
        if method == "apps.connections.open":
            return JSONResponse({"ok": True, "url": self.socket.url if self.socket else ""})
        if method == "users.info":
            name = self.names.get(str(params.get("user")), "")
            return JSONResponse(
                {"ok": True, "user": {"id": params.get("user"), "profile": {"display_name": name}}}
            )
        return JSONResponse({"ok": True})

    def _refused(self, method: str, params: dict[str, Any]) -> list[str]:
        """Slack's error and reasons when it would refuse the call's blocks or view; [] when it is fine."""
        call = SlackCall(method, params)
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and call.blocks:
            errors = block_kit_errors(call.blocks)
            return ["invalid_blocks", *errors] if errors else []
        if method == "views.open":
            view = params.get("view")
            errors = view_errors(json.loads(view) if isinstance(view, str) else dict(view or {}))
            return ["invalid_arguments", *errors] if errors else []
        return []


class FakeSocketMode:
    """Slack's Socket Mode end: a WebSocket on 127.0.0.1 that sends envelopes and records the acks."""

    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeSocketMode:
        application = web.Application()
        application.router.add_get("/link", self._link)
        self._runner = web.AppRunner(application)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"type": "hello", "num_connections": 1, "debug_info": {}})
        self._connected.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                async with self._acked:
                    self.acks[str(data.get("envelope_id"))] = data
                    self._acked.notify_all()
        return socket

    async def send(self, kind: str, payload: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
        """Deliver one envelope (``events_api``, ``interactive``, ``slash_commands``); returns the ack."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()
        assert self._socket is not None
        envelope_id = f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": False,
        }
        await self._socket.send_json(envelope)
        async with asyncio.timeout(timeout), self._acked:
            await self._acked.wait_for(lambda: envelope_id in self.acks)
        return self.acks[envelope_id]
