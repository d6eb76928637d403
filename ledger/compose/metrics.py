"""Prometheus metrics: attempt latency from workers, queue and log gauges at scrape time.

Each process owns one ``Metrics`` (its own registry, no globals). Workers feed
``observe_attempt``; ``GET /metrics`` (and ``ledger worker --metrics-port``)
render the registry. Gauges are read when scraped, from Redis, the log and the
projections, so every process reports the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.claims import Outcome
from ledger.errors import LedgerError
from ledger.service import Ledger
from projections import queries

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ATTEMPT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def outcome_label(outcome: Outcome) -> str:
    if outcome.error is None:
        return "submitted" if outcome.result is not None and outcome.result.pending else "completed"
    return "failed" if outcome.retryable else "permanent_failure"


@dataclass
class Metrics:
    """One process's metrics registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    attempt_seconds: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.attempt_seconds = Histogram(
            "ledger_attempt_duration_seconds",
            "Handler run time per attempt, by outcome.",
            ["outcome"],
            buckets=ATTEMPT_BUCKETS,
            registry=self.registry,
        )

    def observe_attempt(self, outcome: Outcome, seconds: float) -> None:
        self.attempt_seconds.labels(outcome=outcome_label(outcome)).observe(seconds)

    def watch(self, ledger: Ledger) -> None:
        """Add the scrape-time gauges of ``ledger`` (queue depths, jobs by state, lag)."""
        self.registry.register(LedgerCollector(ledger))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LedgerCollector(Collector):
    """Reads Redis, the log head and the projections each time it is scraped."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        yield from self._queue()
        yield from self._log()

    def _queue(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ledger_redis_up", "1 when Redis answered this scrape.")
        try:
            depths = self.ledger.queue.depths()
        except LedgerError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "ledger_queue_depth", "Jobs in the Redis hot queue, by place.", labels=["place"]
        )
        for place, value in (
            ("ready", depths.ready),
            ("delayed", depths.delayed),
            ("due", depths.due),
            ("inflight", depths.inflight),
        ):
            depth.add_metric([place], value)
        yield depth
        yield GaugeMetricFamily(
            "ledger_expired_leases", "In-flight jobs whose lease ran out.", depths.expired_leases
        )
        yield GaugeMetricFamily(
            "ledger_oldest_waiting_seconds",
            "Age of the oldest claimable job (queue lag).",
            depths.oldest_waiting_seconds or 0.0,
        )

    def _log(self) -> Iterator[Metric]:
        try:
            head = self.ledger.store.head().position
            checkpoint = queries.checkpoint(self.ledger.engine)
            stats = queries.stats(self.ledger.engine, datetime.now(UTC))
            controls = self.ledger.controls()
        except LedgerError:
            yield GaugeMetricFamily("ledger_database_up", "1 when the log answered.", 0)
            return
        yield GaugeMetricFamily("ledger_database_up", "1 when the log answered.", 1)
        yield GaugeMetricFamily("ledger_log_position", "Position of the last event.", head)
        yield GaugeMetricFamily(
            "ledger_queue_paused",
            "1 while the queue is paused (ledger pause): workers claim nothing.",
            1 if controls.paused else 0,
        )
        yield GaugeMetricFamily(
            "ledger_queue_rate_limit",
            "The provider rate limit: most attempts started per second (0: none).",
            controls.rate,
        )
        yield GaugeMetricFamily(
            "ledger_projection_lag_events",
            "Events appended but not yet folded into the live projections.",
            max(0, head - checkpoint),
        )
        jobs = GaugeMetricFamily(
            "ledger_jobs",
            "Jobs by state (as of the projections' checkpoint).",
            labels=["state"],
        )
        api = stats.as_api()["stats"]
        for state, count in api.items():
            if isinstance(count, int):
                jobs.add_metric([state], count)
        yield jobs
        money = GaugeMetricFamily(
            "ledger_money_minor_units",
            "Money per currency: paid (gross), reversed, refunded and net (minor units).",
            labels=["currency", "kind"],
        )
        for currency, amounts in api["amounts"].items():
            for kind in ("paid", "reversed", "refunded", "net"):
                money.add_metric([currency, kind], amounts[kind])
        yield money
