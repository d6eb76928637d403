"""The console's pages: the dashboard, the job list, a job's page, the audit panel.

Reads only: each page reads what the API's GETs read (the stats are
``ReadModels.stats``, the same numbers as ``GET /api/queue/stats``), and the
job page reads the job's stream from the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ledger.errors import InvalidRequest, JobNotFound
from ledger.health import check_health, queue_status
from ledger.http.console.chart import daily_chart
from ledger.http.console.filters import FILTER_FIELDS, job_filter
from ledger.http.console.web import SessionDep, SessionsDep, page
from ledger.http.deps import LedgerDep, ReadsDep
from ledger.lifecycle import TERMINAL, JobStatus
from projections.listing import JobFilter, list_jobs

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
#: days of the paid/reversed/net chart
CHART_DAYS = 30


def _stats(ledger: LedgerDep, reads: ReadsDep) -> dict[str, Any]:
    return reads.stats(datetime.now(UTC)).as_api(queue_status(check_health(ledger)))


@router.get("/", response_class=HTMLResponse)
def dashboard(
    ledger: LedgerDep,
    reads: ReadsDep,
    session: SessionDep,
    signer: SessionsDep,
    start: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    done: str = "",
) -> HTMLResponse:
    """Live stats, the controls, the DLQ's first page and the chart."""
    stats = _stats(ledger, reads)
    return page(
        "dashboard.html",
        session,
        signer,
        stats=stats,
        controls=ledger.controls(),
        dlq=reads.dlq_page(start, start + PAGE_SIZE - 1),
        start=start,
        page_size=PAGE_SIZE,
        chart=daily_chart(ledger.engine, datetime.now(UTC).date(), CHART_DAYS),
        done=done,
    )


@router.get("/fragments/stats", response_class=HTMLResponse)
def stats_fragment(
    ledger: LedgerDep, reads: ReadsDep, session: SessionDep, signer: SessionsDep
) -> HTMLResponse:
    """The stats panel alone: the dashboard's script swaps it in every few seconds."""
    stats = _stats(ledger, reads)
    return page("stats.html", session, signer, stats=stats, controls=ledger.controls())


@router.get("/jobs", response_class=HTMLResponse)
def jobs(
    request: Request,
    ledger: LedgerDep,
    session: SessionDep,
    signer: SessionsDep,
    q: str = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    done: str = "",
) -> HTMLResponse:
    """Jobs by status, user, place, mission, currency, amount, last error, time of the last
    change; search by job id, idempotency key, user, place, mission or provider reference."""
    fields = {name: request.query_params.get(name, "") for name in FILTER_FIELDS}
    try:
        wanted = job_filter(fields, q)
    except InvalidRequest as error:
        wanted, done = JobFilter(search=q or None), f"refused: {error.message}"
    listed = list_jobs(ledger.engine, wanted, offset, PAGE_SIZE)
    return page(
        "jobs.html",
        session,
        signer,
        listed=listed,
        statuses=[s.value for s in JobStatus],
        done=done,
        query={**fields, "q": q},
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: str, ledger: LedgerDep, session: SessionDep, signer: SessionsDep, done: str = ""
) -> HTMLResponse:
    """A job's state, its timeline (every event) and the actions its state allows."""
    events = ledger.reader.read_stream(job_id) if len(job_id) <= 36 else []
    if not events:
        raise JobNotFound(job_id)
    job = ledger.job(job_id)
    return page(
        "job.html",
        session,
        signer,
        job=job,
        events=events,
        can_requeue=job.status is JobStatus.DEAD,
        can_cancel=job.status in (JobStatus.WAITING, JobStatus.FAILED, JobStatus.DEAD),
        terminal=job.status in TERMINAL,
        done=done,
    )


@router.get("/audit", response_class=HTMLResponse)
def audit(ledger: LedgerDep, session: SessionDep, signer: SessionsDep) -> HTMLResponse:
    """The chain head; verify on demand (the form posts to ``/audit/verify``)."""
    return page("audit.html", session, signer, head=ledger.reader.head(), result=None)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(signer: SessionsDep, failed: str = "") -> HTMLResponse:
    """The sign-in form: an operator's or auditor's API token."""
    return page("sign_in.html", None, signer, open=signer.open, failed=bool(failed))
