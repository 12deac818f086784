"""A local Twilio REST API: Messages.create and media downloads, on 127.0.0.1, recording every message.

Point the real ``twilio.rest.Client`` at it with ``client.api.base_url = api.base_url`` (the channel does
so from ``REGISTRY_BOT_TWILIO_API_URL``); ``add_media`` serves a file behind the account's basic auth.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import LoopbackServer

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"


@dataclass
class Sent:
    """One Messages.create call."""

    to: str
    body: str
    sender: str  # From, or MessagingServiceSid


class FakeTwilioAPI:
    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[str] = []
        self._sids = itertools.count(1)
        self.port = 0
        prefix = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
        self.app = Starlette(
            routes=[
                Route(f"{prefix}/Messages.json", self._create, methods=["POST"]),
                Route(prefix + "/Messages/{message}/Media/{media}", self._media, methods=["GET"]),
            ]
        )
        self._loopback = LoopbackServer(self.app)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTwilioAPI:
        self.port = await self._loopback.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._loopback.stop()

    def to(self, number: str) -> list[str]:
        return [message.body for message in self.sent if message.to == number]

    def add_media(self, message_sid: str, content: bytes, content_type: str) -> str:
        """Serve ``content``; returns its URL, as Twilio gives it in MediaUrl0."""
        media = f"ME{next(self._sids):032d}"
        self.media[media] = (content, content_type)
        return f"{self.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media/{media}"

    @staticmethod
    def _authorized(request: Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        form = await request.form()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
        self.sent.append(Sent(to, body, sender))
        sid = f"SM{next(self._sids):032d}"
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": ACCOUNT_SID,
                "to": to,
                "from": sender,
                "body": body,
                "status": "queued",
            },
            status_code=201,
        )

    async def _media(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(status_code=401)
        media = request.path_params["media"]
        if media not in self.media:
            return Response(status_code=404)
        self.downloads.append(media)
        content, content_type = self.media[media]
        return Response(content, media_type=content_type)
