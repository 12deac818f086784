"""What `/metrics` reports, in the Prometheus format: turns, their latency, hand-offs, the outbox, errors."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.registry.models import Escalation, OutboxMessage

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One process's metrics, in a registry of its own (so tests and several apps do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._turn_counters: dict[tuple[str, str], Counter] = {}
        self._latencies: dict[str, Histogram] = {}
        self.turns = Counter(
            "registry_bot_turns",
            "Turns handled, by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "registry_bot_turn_seconds",
            "Time to handle one turn",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "registry_bot_errors", "Turns that failed, by kind", ["kind"], registry=self.registry
        )
        self.handoffs_open = Gauge(
            "registry_bot_handoffs_open", "Hand-offs waiting or being handled", registry=self.registry
        )
        self.handoffs_after_hours = Gauge(
            "registry_bot_handoffs_open_after_hours",
            "Open hand-offs that came in after hours",
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "registry_bot_outbox_backlog", "E-mail waiting to be sent", registry=self.registry
        )

    def turn(self, channel: str, outcome: str, seconds: float) -> None:
        counter = self._turn_counters.get((channel, outcome))
        if counter is None:  # looking a labelled child up costs more than counting: keep each one
            counter = self._turn_counters[(channel, outcome)] = self.turns.labels(channel, outcome)
        latency = self._latencies.get(channel)
        if latency is None:
            latency = self._latencies[channel] = self.turn_seconds.labels(channel)
        counter.inc()
        latency.observe(seconds)

    async def render(self, sessionmaker: async_sessionmaker[AsyncSession]) -> bytes:
        """The exposition text, with the database gauges read now."""
        try:
            async with sessionmaker() as session:
                open_query = select(func.count()).where(Escalation.status.in_(("open", "claimed")))
                self.handoffs_open.set((await session.execute(open_query)).scalar_one())
                late = open_query.where(Escalation.after_hours.is_(True))
                self.handoffs_after_hours.set((await session.execute(late)).scalar_one())
                backlog = select(func.count()).where(OutboxMessage.sent_at.is_(None))
                self.outbox_backlog.set((await session.execute(backlog)).scalar_one())
        except Exception:  # the turn counters are still worth reporting while the database is away
            logger.warning("metrics: database gauges not refreshed")
        return generate_latest(self.registry)
