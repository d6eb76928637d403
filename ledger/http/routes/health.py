"""``GET /health`` (liveness: the process answers) and ``GET /ready`` (dependencies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from ledger.errors import LedgerError

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: answers while the process runs."""
    return {"status": "ok"}


@router.get("/ready")
def ready(request: Request, response: Response) -> dict[str, Any]:
    """Readiness: the database answers (and Redis, projection lag, queue lag when present)."""
    checks: dict[str, Any] = {}
    healthy = True
    try:
        head = request.app.state.ledger.store.head()
        checks["database"] = {"ok": True, "headPosition": head.position}
    except LedgerError as error:
        healthy = False
        checks["database"] = {"ok": False, "error": error.message}
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if healthy else "unavailable", "checks": checks}
