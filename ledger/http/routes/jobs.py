"""``GET /api/jobs/{id}`` and its full history, read from the log itself (never behind)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import AfterValidator

from ledger.http.auth import EVERYONE, READERS, Principal, require
from ledger.http.deps import LedgerDep, LogDep
from ledger.http.documents import job_document
from ledger.http.problems import documented
from ledger.request import IDENTIFIER_DESCRIPTION, MAX_JOB_ID_LENGTH
from ledger.text import identifier_text
from projections import history

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_JOB_ID_LENGTH, description=IDENTIFIER_DESCRIPTION),
    AfterValidator(identifier_text),
]


@router.get("/{job_id}", responses=documented(404))
def get_job(
    ledger: LedgerDep,
    job_id: JobId,
    _who: Annotated[Principal, Depends(require(*EVERYONE))],
) -> dict[str, Any]:
    """The job's current state, folded from its events."""
    return job_document(ledger.job(job_id), datetime.now(UTC))


@router.get("/{job_id}/history", responses=documented(404))
def get_job_history(
    log: LogDep,
    job_id: JobId,
    _who: Annotated[Principal, Depends(require(*READERS))],
) -> dict[str, Any]:
    """Every event of the job, in order: ``{"jobId", "state", "events": [...]}``."""
    return history.history(log, job_id).as_api()
