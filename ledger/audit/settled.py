"""Completed settlements, folded from the log with ``ledger.lifecycle``.

Pure: takes events, yields one ``Settlement`` per completed job, once. A paid
job's later events (money given back, in the lifecycle's later event types) are
still checked against the lifecycle but leave the settlement as it was paid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.events import StoredEvent
from ledger.lifecycle import Job, JobStatus, apply


@dataclass(frozen=True, slots=True)
class Settlement:
    """A completed payout: what the provider's statement should list.

    ``reference`` is the provider's payout id when the log recorded one (its
    answer on the job's events, ``data["provider"]["reference"]``).
    """

    idempotency_key: str
    amount: int
    currency: str
    job_id: str
    completed_at: datetime
    reference: str | None = None


def completed_settlements(events: Iterable[StoredEvent]) -> Iterator[Settlement]:
    """Fold events (in log order) and yield each job as it completes.

    An illegal history raises ``IllegalTransition``: run ``verify`` first.
    """
    open_jobs: dict[str, Job] = {}
    #: paid jobs: later events still follow the lifecycle, but never settle them again
    paid: dict[str, Job] = {}
    references: dict[str, str] = {}
    for event in events:
        if event.job_id in paid:
            paid[event.job_id] = apply(paid[event.job_id], event)
            continue
        job = apply(open_jobs.get(event.job_id), event)
        reference = _reference(event.data)
        if reference is not None:
            references[event.job_id] = reference
        if job.status is JobStatus.COMPLETED:
            open_jobs.pop(event.job_id, None)
            paid[event.job_id] = job
            yield Settlement(
                idempotency_key=job.idempotency_key,
                amount=job.amount,
                currency=job.currency,
                job_id=job.job_id,
                completed_at=event.occurred_at,
                reference=references.pop(event.job_id, None),
            )
        else:
            open_jobs[event.job_id] = job


def _reference(data: Mapping[str, Any]) -> str | None:
    provider = data.get("provider")
    if isinstance(provider, Mapping):
        reference = provider.get("reference")
        if isinstance(reference, str) and reference:
            return reference
    return None
