"""Health: database and Redis reachability, queue depths, oldest waiting job, expired leases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.errors import LedgerError
from ledger.queue import Depths
from ledger.service import Ledger


@dataclass(frozen=True, slots=True)
class Health:
    """One health report; ``ok`` when both backends answer."""

    database: bool
    redis: bool
    log_position: int | None
    depths: Depths | None
    errors: list[str]

    @property
    def ok(self) -> bool:
        return self.database and self.redis

    def as_dict(self) -> dict[str, Any]:
        """camelCase JSON, the shape the old ``GET /api/queue/stats`` consumers read."""
        depths = self.depths
        return {
            "ok": self.ok,
            "database": self.database,
            "redis": self.redis,
            "logPosition": self.log_position,
            "ready": depths.ready if depths else None,
            "delayed": depths.delayed if depths else None,
            "due": depths.due if depths else None,
            "inFlight": depths.inflight if depths else None,
            "expiredLeases": depths.expired_leases if depths else None,
            "oldestWaitingSeconds": depths.oldest_waiting_seconds if depths else None,
            "errors": self.errors,
        }


def check_health(ledger: Ledger) -> Health:
    """Ask both backends; a failure is reported, never raised."""
    errors: list[str] = []
    position: int | None = None
    depths: Depths | None = None
    try:
        position = ledger.store.head().position
    except LedgerError as error:
        errors.append(f"database: {error.message}")
    try:
        depths = ledger.queue.depths()
    except LedgerError as error:
        errors.append(f"redis: {error.message}")
    return Health(position is not None, depths is not None, position, depths, errors)


def queue_status(report: Health) -> str:
    """``healthy`` when the log and Redis answer and no lease expired unnoticed;
    ``degraded`` when Redis is away or leases wait for the reaper; ``unhealthy``
    when the log cannot be read."""
    if not report.database:
        return "unhealthy"
    if not report.redis or (report.depths is not None and report.depths.expired_leases):
        return "degraded"
    return "healthy"
