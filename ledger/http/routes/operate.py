"""The queue's controls over HTTP: ``GET /api/queue/controls``, ``POST /api/queue/pause``
and ``POST /api/queue/resume`` (operator).

Each change is an event of the operator stream with the caller's role and the
reason; asking for the state the queue already has appends nothing
(``appended: false``), so a retried request is harmless.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from ledger.http.auth import READERS, Principal, Role, require
from ledger.http.deps import LedgerDep
from ledger.request import Reason

router = APIRouter(prefix="/api/queue", tags=["queue"])

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Reader = Annotated[Principal, Depends(require(*READERS))]


class Why(BaseModel):
    """Why (recorded in the log with the operator)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Reason


@router.get("/controls")
def controls(ledger: LedgerDep, _who: Reader) -> dict[str, Any]:
    """Whether the queue is paused, since when, by whom and why (from the log)."""
    return ledger.controls().as_api()


@router.post("/pause")
def pause(body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Pause the queue: workers stop claiming (running jobs finish); enqueues go on."""
    return ledger.pause(actor=f"http:{who.name}", reason=body.reason).as_api()


@router.post("/resume")
def resume(body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Resume a paused queue."""
    return ledger.resume(actor=f"http:{who.name}", reason=body.reason).as_api()
