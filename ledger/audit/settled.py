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

from ledger.events import EventType, StoredEvent
from ledger.lifecycle import Job, apply
from ledger.provider import provider_key


@dataclass(frozen=True, slots=True)
class Settlement:
    """A completed payout: what the provider's statement should list.

    ``reference`` is the provider's payout id when the log recorded one (the
    ``reference`` of the ``submitted`` or ``completed`` event).
    """

    idempotency_key: str
    amount: int
    currency: str
    job_id: str
    completed_at: datetime
    reference: str | None = None


def completed_settlements(events: Iterable[StoredEvent]) -> Iterator[Settlement]:
    """Fold events (in log order) and yield each payment as it completes.

    A job paid again in a later round (a reversed amount paid anew) yields one
    settlement per round, under that round's provider key (``KEY:round-N``) and
    amount. An illegal history raises ``IllegalTransition``: run ``verify`` first.
    """
    jobs: dict[str, Job] = {}
    references: dict[str, str] = {}
    for event in events:
        job = apply(jobs.get(event.job_id), event)
        jobs[event.job_id] = job
        reference = _reference(event.data)
        if reference is not None and event.type is not EventType.REVERSED:
            references[event.job_id] = reference
        if event.type is EventType.COMPLETED:
            amount = event.data.get("amount")
            yield Settlement(
                idempotency_key=provider_key(job.idempotency_key, job.round),
                amount=job.amount if amount is None else int(amount),
                currency=job.currency,
                job_id=job.job_id,
                completed_at=event.occurred_at,
                reference=references.pop(event.job_id, None),
            )


def _reference(data: Mapping[str, Any]) -> str | None:
    reference = data.get("reference")
    return reference if isinstance(reference, str) and reference else None
