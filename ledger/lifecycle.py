"""The job lifecycle: states, the one transition table, and the fold of events into a job.

Pure: no IO, no clock. Every writer and every projection uses this module, so
the log can only ever hold legal histories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.errors import IllegalTransition
from ledger.events import EventType, StoredEvent


class JobStatus(StrEnum):
    """Where a job stands. ``waiting`` with a future due time is shown as ``delayed``."""

    WAITING = "waiting"
    PROCESSING = "processing"
    FAILED = "failed"
    DEAD = "dead"
    COMPLETED = "completed"


#: (state before, event) → state after. Anything not listed is illegal.
TRANSITIONS: Mapping[tuple[JobStatus | None, EventType], JobStatus] = {
    (None, EventType.ENQUEUED): JobStatus.WAITING,
    (JobStatus.WAITING, EventType.ATTEMPTED): JobStatus.PROCESSING,
    (JobStatus.PROCESSING, EventType.COMPLETED): JobStatus.COMPLETED,
    (JobStatus.PROCESSING, EventType.FAILED): JobStatus.FAILED,
    (JobStatus.FAILED, EventType.REQUEUED): JobStatus.WAITING,
    (JobStatus.FAILED, EventType.DEAD_LETTERED): JobStatus.DEAD,
    (JobStatus.DEAD, EventType.REQUEUED): JobStatus.WAITING,
}

TERMINAL = frozenset({JobStatus.COMPLETED})


def next_status(job_id: str, current: JobStatus | None, event_type: EventType) -> JobStatus:
    """The state after ``event_type``, or ``IllegalTransition``."""
    try:
        return TRANSITIONS[(current, event_type)]
    except KeyError:
        raise IllegalTransition(job_id, current, event_type) from None


@dataclass(frozen=True, slots=True)
class Job:
    """A job's current state, folded from its events."""

    job_id: str
    status: JobStatus
    version: int
    request: Mapping[str, Any]
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None = None
    #: every attempt ever made, the number an outcome must quote
    attempts: int = 0
    #: attempts since the job was (re)queued from the DLQ; the retry budget counts these
    round_attempts: int = 0
    worker: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    dead_lettered_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        return str(self.request["idempotency_key"])

    @property
    def amount(self) -> int:
        return int(self.request["amount"])

    @property
    def currency(self) -> str:
        return str(self.request["currency"])

    def is_delayed(self, now: datetime) -> bool:
        return self.status is JobStatus.WAITING and self.due_at is not None and self.due_at > now


def _parse_time(value: object) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def apply(job: Job | None, event: StoredEvent) -> Job:
    """Fold one event into the job; ``IllegalTransition`` if the lifecycle forbids it."""
    status = next_status(event.job_id, job.status if job else None, event.type)
    if job is None:
        return _enqueued(event, status)
    data = event.data
    common: dict[str, Any] = {
        "status": status,
        "version": event.version,
        "updated_at": event.occurred_at,
    }
    if event.type is EventType.ATTEMPTED:
        return replace(
            job,
            **common,
            attempts=job.attempts + 1,
            round_attempts=job.round_attempts + 1,
            worker=event.actor,
            lease_until=_parse_time(data.get("lease_until")),
            due_at=None,
        )
    if event.type is EventType.COMPLETED:
        return replace(job, **common, completed_at=event.occurred_at, lease_until=None)
    if event.type is EventType.FAILED:
        return replace(job, **common, last_error=data.get("reason"), lease_until=None)
    if event.type is EventType.DEAD_LETTERED:
        return replace(job, **common, dead_lettered_at=event.occurred_at, worker=None)
    # requeued: from a retry (keeps the budget) or from the DLQ (fresh budget)
    from_dlq = job.status is JobStatus.DEAD
    return replace(
        job,
        **common,
        due_at=_parse_time(data.get("due_at")),
        round_attempts=0 if from_dlq else job.round_attempts,
        dead_lettered_at=None,
        worker=None,
    )


def _enqueued(event: StoredEvent, status: JobStatus) -> Job:
    data = event.data
    return Job(
        job_id=event.job_id,
        status=status,
        version=event.version,
        request=data["request"],
        max_attempts=int(data["max_attempts"]),
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        due_at=_parse_time(data.get("due_at")),
    )


def fold(events: Iterable[StoredEvent]) -> Job | None:
    """The job after all its events (``None`` for an empty stream)."""
    job: Job | None = None
    for event in events:
        job = apply(job, event)
    return job
