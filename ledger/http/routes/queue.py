"""The queue endpoints of the system the ledger replaces: stats, failed (DLQ), requeue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ledger.errors import ConcurrencyError, InvalidRequest, JobNotFound, NotInDeadLetterQueue
from ledger.health import check_health, queue_status
from ledger.http.auth import READERS, Principal, Role, require
from ledger.http.deps import LedgerDep, ReadsDep
from ledger.http.problems import Problem, problem_body
from ledger.request import JobIdentifier, Reason

router = APIRouter(prefix="/api/queue", tags=["queue"])

MAX_PAGE = 1000


@router.get("/stats")
def queue_stats(
    ledger: LedgerDep,
    reads: ReadsDep,
    _who: Annotated[Principal, Depends(require(*READERS))],
) -> dict[str, Any]:
    """Counts of waiting, processing, dlq, delayed, completed and total jobs, and amounts;
    ``paused``: whether workers are held from claiming (``POST /api/queue/pause``);
    ``limits``: the provider rate limit (``POST /api/queue/limits``).

    As of the log's head (``asOfPosition``): a job enqueued just before is counted.
    """
    status_now = queue_status(check_health(ledger))
    controls = ledger.controls()
    return {
        **reads.stats(datetime.now(UTC)).as_api(status_now),
        "paused": controls.paused,
        "limits": {"attemptsPerSecond": controls.rate or None},
    }


@router.get("/failed")
def failed_jobs(
    reads: ReadsDep,
    _who: Annotated[Principal, Depends(require(*READERS))],
    start: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    end: Annotated[
        int,
        Query(ge=-1, le=1_000_000, description="Inclusive; at least `start`, or -1 (the last)."),
    ] = 10,
) -> dict[str, Any]:
    """The dead-letter queue, newest first; ``start``..``end`` inclusive, at most 1,000 a page.

    ``end=-1`` means "to the last", capped like any other page; ``end < start`` is a 422.
    """
    if end != -1 and end < start:
        raise InvalidRequest(
            f"invalid end: {end} is before start {start} (use end >= start, or -1)", field="end"
        )
    if end == -1 or end - start >= MAX_PAGE:
        end = start + MAX_PAGE - 1
    return reads.dlq_page(start, end).as_api()


class RequeueBody(BaseModel):
    """Which dead-lettered job to requeue, and why (recorded with the operator)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    job_id: JobIdentifier = Field(alias="jobId")
    reason: Reason = "requeued via API"


class RequeueAnswer(BaseModel):
    """The answer of the system the ledger replaces: ``{success, jobId, message}``."""

    success: bool
    jobId: str
    message: str


class RequeueProblem(Problem):
    """A refused requeue: the replaced system's fields beside the ``Problem`` ones."""

    success: bool
    jobId: str
    message: str


@router.post(
    "/dlq",
    response_model=RequeueAnswer,
    responses={
        404: {"model": RequeueProblem, "description": "no such job"},
        409: {
            "model": RequeueProblem,
            "description": "the job is not dead-lettered, or another requeue got there first",
        },
    },
)
def requeue(
    ledger: LedgerDep,
    body: RequeueBody,
    who: Annotated[Principal, Depends(require(Role.OPERATOR))],
) -> JSONResponse:
    """Requeue a dead-lettered job; the ``requeued`` event records the operator and reason."""
    try:
        ledger.requeue_from_dlq(body.job_id, actor=f"http:{who.name}", reason=body.reason)
    except JobNotFound as error:
        return _answer(status.HTTP_404_NOT_FOUND, False, body.job_id, error.message)
    except (NotInDeadLetterQueue, ConcurrencyError) as error:
        return _answer(status.HTTP_409_CONFLICT, False, body.job_id, error.message)
    return _answer(status.HTTP_200_OK, True, body.job_id, "Job requeued successfully")


def _answer(code: int, success: bool, job_id: str, message: str) -> JSONResponse:
    answer: dict[str, Any] = {"success": success, "jobId": job_id, "message": message}
    if not success:
        answer = {**problem_body(message), **answer}
    return JSONResponse(answer, status_code=code)
