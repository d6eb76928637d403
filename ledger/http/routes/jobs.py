"""``GET /api/jobs/{id}`` and its full history, folded from the log itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from ledger.errors import JobNotFound
from ledger.events import StoredEvent
from ledger.http.auth import EVERYONE, READERS, Principal, require
from ledger.http.documents import history_document, job_document
from ledger.lifecycle import Job, fold

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]


def _load(request: Request, job_id: str) -> tuple[Job, list[StoredEvent]]:
    events = request.app.state.ledger.store.read_stream(job_id)
    job = fold(events)
    if job is None:
        raise JobNotFound(job_id)
    return job, events


@router.get("/{job_id}")
def get_job(
    request: Request,
    job_id: JobId,
    _who: Annotated[Principal, Depends(require(*EVERYONE))],
) -> dict[str, Any]:
    """The job's current state (from its own events: never behind the log)."""
    job, _ = _load(request, job_id)
    return job_document(job, datetime.now(UTC))


@router.get("/{job_id}/history")
def get_job_history(
    request: Request,
    job_id: JobId,
    _who: Annotated[Principal, Depends(require(*READERS))],
) -> dict[str, Any]:
    """Every event of the job, in order."""
    job, events = _load(request, job_id)
    return history_document(job, events, datetime.now(UTC))
