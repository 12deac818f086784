"""A local Telegram Bot API: the methods python-telegram-bot calls, on 127.0.0.1, recording every call.

Point the real client at it with ``base_url`` / ``base_file_url``; queue updates with ``push_update``
(served by long-polling ``getUpdates``), then assert on ``calls`` what the member would have seen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import LoopbackServer

TOKEN = "123456:TEST-fake-token"
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Registry Help Desk",
    "username": "registry_help_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# Parameters the client sends as plain strings; every other one is JSON-encoded (numbers, objects, lists).
STRING_PARAMS = {
    "text",
    "parse_mode",
    "callback_query_id",
    "file_id",
    "url",
    "secret_token",
    "language_code",
    "caption",
    "inline_message_id",
}
MAX_POLL_WAIT = 1.0  # seconds a getUpdates call waits at most, so shutdown never waits long


@dataclass
class Call:
    """One Bot API call the client made."""

    method: str
    params: dict[str, Any]
    result: Any = None  # what the fake answered (a sent message carries its message_id)

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[dict[str, Any]]:
        markup = self.params.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]


class FakeBotAPI:
    """The Bot API of one bot, served by uvicorn in a background task of the running event loop."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.polls = 0
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        self.downloads: list[str] = []
        self._changed = asyncio.Condition()
        self._closing = False
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        #: answers to give instead of the real one, per method: (HTTP status, extra JSON fields)
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._method, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )
        self._loopback = LoopbackServer(self.app)

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def __aenter__(self) -> FakeBotAPI:
        self.port = await self._loopback.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self._closing = True
            self._changed.notify_all()
        await self._loopback.stop()

    # -- what tests do ---------------------------------------------------------------------------------------

    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for the next getUpdates."""
        async with self._changed:
            self.updates.append(update)
            self._changed.notify_all()

    def add_file(self, file_id: str, content: bytes, *, path: str) -> None:
        """A file the client can fetch with getFile and download."""
        self.files[file_id] = (path, content)

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages sent, to one chat or to all."""
        return [
            call
            for call in self.called("sendMessage")
            if chat_id is None or call.params.get("chat_id") == chat_id
        ]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true after some call (bounded by ``timeout``)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # -- the Bot API -----------------------------------------------------------------------------------------

    async def _method(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await self._params(request)
        if method == "getUpdates":
            self.polls += 1
            return self._ok(await self._get_updates(params))
        if self.failures.get(method):
            code, extra = self.failures[method].pop(0)
            self.calls.append(Call(f"{method} ({code})", params))
            body = {"ok": False, "error_code": code, "description": f"error {code}", **extra}
            return JSONResponse(body, status_code=code)
        handler = getattr(self, f"_api_{method}", None)
        result = self._error(404, "Not Found: method not found") if handler is None else handler(params)
        async with self._changed:
            self.calls.append(Call(method, params, None if isinstance(result, Response) else result))
            self._changed.notify_all()
        return result if isinstance(result, Response) else self._ok(result)

    async def _params(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        if not body:
            return dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/json"):
            return dict(json.loads(body))
        params: dict[str, Any] = {}
        for key, value in parse_qsl(body.decode(), keep_blank_values=True):
            if key in STRING_PARAMS:
                params[key] = value
            else:
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = value
        return params

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), MAX_POLL_WAIT)
        async with self._changed:
            self.updates = [update for update in self.updates if update["update_id"] >= offset]
            if not self.updates and wait > 0 and not self._closing:
                try:
                    async with asyncio.timeout(wait):
                        await self._changed.wait_for(lambda: bool(self.updates) or self._closing)
                except TimeoutError:
                    pass
            return list(self.updates)

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        path = request.path_params["path"]
        for file_path, content in self.files.values():
            if file_path == path:
                async with self._changed:
                    self.downloads.append(path)
                    self._changed.notify_all()
                return Response(content, media_type="application/octet-stream")
        return Response(status_code=404)

    def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        return True

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return True

    def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        return True

    def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        text = str(params.get("text", ""))
        if not text or len(text.encode("utf-16-le")) // 2 > 4096:
            return self._error(400, "Bad Request: message text is empty or too long")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": params["chat_id"], "type": "private"},
            "from": BOT_USER,
            "text": text,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            return self._error(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    @staticmethod
    def _ok(result: Any) -> Response:
        return JSONResponse({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str) -> Response:
        return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)
