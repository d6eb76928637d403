"""Completed settlements, folded from the log with ``ledger.lifecycle``.

Pure: takes events, yields one ``Settlement`` per completed job. Only jobs that
are still open are held in memory; a job is dropped once it completes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from ledger.events import StoredEvent
from ledger.lifecycle import Job, JobStatus, apply


@dataclass(frozen=True, slots=True)
class Settlement:
    """A completed payout: what the provider's statement should list."""

    idempotency_key: str
    amount: int
    currency: str
    job_id: str
    completed_at: datetime


def completed_settlements(events: Iterable[StoredEvent]) -> Iterator[Settlement]:
    """Fold events (in log order) and yield each job as it completes.

    An illegal history raises ``IllegalTransition``: run ``verify`` first.
    """
    open_jobs: dict[str, Job] = {}
    for event in events:
        job = apply(open_jobs.get(event.job_id), event)
        if job.status is JobStatus.COMPLETED:
            open_jobs.pop(event.job_id, None)
            yield Settlement(
                idempotency_key=job.idempotency_key,
                amount=job.amount,
                currency=job.currency,
                job_id=job.job_id,
                completed_at=event.occurred_at,
            )
        else:
            open_jobs[event.job_id] = job
