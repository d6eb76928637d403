"""``GET /health`` (liveness: the process answers) and ``GET /ready`` (dependencies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from ledger.errors import LedgerError
from ledger.health import check_health
from ledger.http.deps import LedgerDep
from projections import queries

router = APIRouter(tags=["health"])

#: projection lag (events) above which the server is not ready to answer reads
MAX_PROJECTION_LAG = 10_000


@router.get("/health")
@router.head("/health")
def health(ledger: LedgerDep) -> dict[str, Any]:
    """Liveness: answers while the process runs (HEAD too: load balancers probe with it).

    The body says whether the queue is paused (``paused``: ``null`` when the log cannot
    be read now; liveness does not depend on it, and ``/ready`` stays ready while paused,
    so load balancers keep sending enqueues).
    """
    try:
        paused: bool | None = ledger.controls().paused
    except LedgerError:
        paused = None
    return {"status": "ok", "paused": paused}


@router.get("/ready")
@router.head("/ready")
def ready(ledger: LedgerDep, response: Response) -> dict[str, Any]:
    """Readiness: the database and Redis answer; projection lag and queue lag reported."""
    report = check_health(ledger)
    checks: dict[str, Any] = {
        "database": {"ok": report.database, "headPosition": report.log_position},
        "redis": {"ok": report.redis},
        "queue": report.as_dict(),
    }
    lag: int | None = None
    if report.database and report.log_position is not None:
        try:
            lag = report.log_position - queries.checkpoint(ledger.engine)
        except LedgerError as error:
            checks["projections"] = {"ok": False, "error": error.message}
    if lag is not None:
        checks["projections"] = {"ok": lag <= MAX_PROJECTION_LAG, "lagEvents": lag}
    healthy = report.ok and checks.get("projections", {}).get("ok", False)
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if healthy else "unavailable", "checks": checks}
