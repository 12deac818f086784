"""A local WhatsApp Cloud API (Graph API): sending messages and serving media, on 127.0.0.1.

Point the channel at it with ``whatsapp_api_url``; add files with ``add_media``; assert on ``sent`` what the
member would have seen. Meta's side of the webhook (signing a body) is ``signed``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import LoopbackServer

TOKEN = "EAAG-fake-whatsapp-token"
PHONE_ID = "1098765432"
APP_SECRET = "fake-app-secret"


@dataclass
class Sent:
    """One message the client sent."""

    to: str
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    @property
    def text(self) -> str:
        if self.type == "text":
            return str(self.body["text"]["body"])
        if self.type == "interactive":
            return str(self.body["interactive"]["body"]["text"])
        return ""

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(title, id) of each reply button or list row."""
        if self.type != "interactive":
            return []
        action = self.body["interactive"]["action"]
        if "buttons" in action:
            return [(b["reply"]["title"], b["reply"]["id"]) for b in action["buttons"]]
        return [(row["title"], row["id"]) for section in action["sections"] for row in section["rows"]]


class FakeGraphAPI:
    """The Cloud API of one business phone number, served by uvicorn in the running event loop."""

    def __init__(self, token: str = TOKEN, phone_id: str = PHONE_ID) -> None:
        self.token = token
        self.phone_id = phone_id
        self.sent: list[Sent] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_lookups: list[str] = []
        self.downloads: list[str] = []
        #: (HTTP status, Cloud API error code) to answer the next sends with instead of accepting them
        self.failures: list[tuple[int, int]] = []
        self._ids = itertools.count(1)
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/{version}/{phone_id}/messages", self._messages, methods=["POST"]),
                Route("/files/{media_id}", self._download, methods=["GET"]),
                Route("/{version}/{media_id}", self._media_url, methods=["GET"]),
            ]
        )
        self._loopback = LoopbackServer(self.app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeGraphAPI:
        self.port = await self._loopback.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._loopback.stop()

    def add_media(self, media_id: str, content: bytes, mime_type: str) -> None:
        self.media[media_id] = (content, mime_type)

    def to(self, wa_id: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.to == wa_id]

    # -- the API ---------------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    @staticmethod
    def _error(status: int, message: str, code: int = 100) -> Response:
        body = {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}}
        return JSONResponse(body, status_code=status)

    async def _messages(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, "Invalid OAuth access token", 190)
        if request.path_params["phone_id"] != self.phone_id:
            return self._error(400, "Unsupported post request")
        body = json.loads(await request.body())
        if self.failures:
            status, code = self.failures.pop(0)
            return self._error(status, f"error {code}", code)
        self.sent.append(Sent(str(body["to"]), body))
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.out.{next(self._ids)}"}],
            }
        )

    async def _media_url(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, "Invalid OAuth access token", 190)
        media_id = request.path_params["media_id"]
        self.media_lookups.append(media_id)
        if media_id not in self.media:
            return self._error(404, "Unsupported get request")
        content, mime_type = self.media[media_id]
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/files/{media_id}",
                "mime_type": mime_type,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file_size": len(content),
                "id": media_id,
            }
        )

    async def _download(self, request: Request) -> Response:
        if not self._authorized(request):  # the media URL alone is not enough: the token is needed too
            return Response(status_code=401)
        media_id = request.path_params["media_id"]
        self.downloads.append(media_id)
        content, mime_type = self.media[media_id]
        return Response(content, media_type=mime_type)


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """The headers Meta sends with a webhook body."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"}
