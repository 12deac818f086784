"""Serving: the channel plug-in interface, what runs beside the HTTP server, and the process's health.

``registry-bot serve`` runs one ASGI application that hosts every configured channel. This module holds the
framework-free part of it: a channel is anything that can start, stop, report its health and hand over the
HTTP routes it needs; :class:`Services` starts the channels and the e-mail outbox delivery, stops them on
shutdown and answers the health check. The Starlette application itself is built by
``bot.channels.web.create_asgi`` (only ``bot/channels`` imports a web framework).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from bot.app import App
from bot.mail import OutboxSender
from bot.messages import Reply
from bot.registry import repo

logger = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0  # seconds to finish telling staff at shutdown
HEALTH_TIMEOUT = 3.0  # seconds; a database that cannot do what a turn does in this time is not well


@runtime_checkable
class Channel(Protocol):
    """A chat channel hosted by ``serve`` (web chat, Telegram webhook, Slack endpoints).

    ``routes()`` returns the ``starlette.routing.BaseRoute`` objects the channel serves (none for a channel
    that only polls); they are mounted before the server starts. ``start()`` runs in the application's
    lifespan before the first request, ``stop()`` after the last in-flight request has finished, and it
    must let the turns it started itself (polling) finish. ``healthy()`` is cheap and never raises.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def routes(self) -> Sequence[object]: ...

    def healthy(self) -> bool: ...


def connect(app: App, channels: Sequence[Channel]) -> None:
    """Let channels hear each other through the core: staff messages reach members' chats (``push``), and
    what the engine records (hand-offs, requests, member messages) reaches staff (``on_event``)."""
    by_name = {channel.name: channel for channel in channels}

    async def push(channel_name: str, user_id: str, replies: list[Reply]) -> bool:
        channel = by_name.get(channel_name)
        deliver = getattr(channel, "push", None)
        return bool(await deliver(user_id, replies)) if deliver is not None else False

    app.helpdesk.push = push
    for channel in channels:
        listener = getattr(channel, "on_event", None)
        if listener is not None:
            app.engine.listeners.append(listener)


class Services:
    """The channels and background work of one ``serve`` process, started and stopped together."""

    def __init__(self, app: App, channels: Sequence[Channel], *, outbox_interval: float = 5.0) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique: {names}")
        self.app = app
        self.channels = tuple(channels)
        self.outbox_interval = outbox_interval
        self._started: list[Channel] = []
        self._outbox: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start every channel (stopping those already started if one fails), then the outbox delivery."""
        for channel in self.channels:
            try:
                await channel.start()
            except BaseException:
                logger.exception("channel %s failed to start", channel.name)
                await self.stop()
                raise
            self._started.append(channel)
            logger.info("channel %s started", channel.name)
        sender = OutboxSender(self.app.settings, self.app.sessionmaker)
        if sender.configured:
            self._outbox = asyncio.create_task(
                sender.run(self.app.engine.clock, interval=self.outbox_interval), name="outbox-delivery"
            )
            logger.info("e-mail outbox delivery started")

    async def stop(self) -> None:
        """Stop the channels in reverse order (each finishes the turns it has begun), let staff hear what
        those turns recorded (``SETTLE_TIMEOUT`` at most: a stopped channel still posts to Slack's Web
        API), then stop the outbox delivery (unsent mail stays in the outbox)."""
        while self._started:
            channel = self._started.pop()
            try:
                await channel.stop()
            except Exception:  # the others must still stop
                logger.exception("channel %s failed to stop cleanly", channel.name)
            else:
                logger.info("channel %s stopped", channel.name)
        if not await self.app.engine.settle(SETTLE_TIMEOUT):
            logger.warning("stopping with notifications for staff still queued")
        if self._outbox is not None:
            self._outbox.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbox
            self._outbox = None

    async def database_state(self, *, timeout: float = HEALTH_TIMEOUT) -> str:
        """``ok``; ``stalled`` when the database is reached but cannot do what a turn does within
        ``timeout`` seconds (a held lock, an overloaded server); ``unreachable`` otherwise."""
        connected = False

        async def probe() -> None:
            nonlocal connected
            async with self.app.database.connect() as connection:
                connected = True
                transaction = await connection.begin()
                try:
                    await repo.probe_writes(connection, now=self.app.engine.clock())
                finally:
                    await transaction.rollback()

        try:
            await asyncio.wait_for(probe(), timeout)
        except Exception as exc:  # any failure to answer in time counts; the reason is for the operator
            state = "stalled" if connected else "unreachable"
            logger.warning("health check: database %s (%s)", state, type(exc).__name__)
            return state
        return "ok"

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(database up, report): the report names the database's and each channel's state.

        The process is ``unavailable`` when the database cannot be reached and ``degraded`` when it stalls
        (both answer 503: members cannot be answered); a channel that is not healthy also makes it
        ``degraded`` (200: the others still work).
        """
        state = await self.database_state()
        database = state == "ok"
        channels: dict[str, str] = {}
        for channel in self.channels:
            try:
                healthy = bool(channel.healthy())
            except Exception:
                logger.exception("channel %s health check failed", channel.name)
                healthy = False
            channels[channel.name] = "ok" if healthy else "unhealthy"
        if state == "unreachable":
            status = "unavailable"
        elif database and all(health == "ok" for health in channels.values()):
            status = "ok"
        else:
            status = "degraded"
        report = {
            "status": status,
            "database": state,
            "channels": channels,
            "outbox_delivery": "running" if self._outbox is not None and not self._outbox.done() else "off",
        }
        return database, report
