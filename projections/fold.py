"""The pure fold of a batch of events into read-model changes.

No IO. The runner loads the jobs a batch touches, calls ``fold_batch``, and writes
the changes (SQL tables, or dicts for in-memory as-of replays). Every job
transition goes through ``ledger.lifecycle.apply``, the one transition table.

Row builders (``job_row``, ``dlq_row``, …) give the exact column values of each
projection table, so SQL and memory hold identical rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from ledger.events import EventType, StoredEvent, to_utc
from ledger.lifecycle import Job, JobStatus, apply
from ledger.request import canonical_json

#: bucket of ``queue_stats`` that counts every job ever enqueued (it only grows)
ENQUEUED = "enqueued"

#: (currency, bucket) where bucket is a job status or ``ENQUEUED``
StatsKey = tuple[str, str]
#: (day, currency, user_id, place_id, mission_id): the grain of ``settled_totals``
SettledKey = tuple[date, str, str, str, str]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's folded state plus what the read models need beyond ``Job``."""

    job: Job
    #: position of the job's last event
    position: int
    #: reason on the ``dead_lettered`` event, while the job is dead-lettered
    dead_letter_reason: str | None = None


@dataclass(slots=True)
class Totals:
    """A count of jobs and a sum of minor units (a mutable accumulator)."""

    jobs: int = 0
    amount: int = 0

    def add(self, jobs: int, amount: int) -> None:
        self.jobs += jobs
        self.amount += amount

    @property
    def is_zero(self) -> bool:
        return self.jobs == 0 and self.amount == 0


@dataclass(slots=True)
class BatchChanges:
    """What one batch of events changes in every projection."""

    #: the state after the batch of every job it touched, in first-touch order
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    #: jobs that were dead-lettered before the batch and are not after it
    dlq_removed: list[str] = field(default_factory=list)
    #: rows of new idempotency keys
    idempotency: list[dict[str, Any]] = field(default_factory=list)
    #: ``queue_stats`` deltas; zero deltas are left out
    stats: dict[StatsKey, Totals] = field(default_factory=dict)
    #: ``settled_totals`` increments
    settled: dict[SettledKey, Totals] = field(default_factory=dict)
    #: position of the batch's last event
    last_position: int = 0

    @property
    def dlq(self) -> list[JobRecord]:
        """Jobs dead-lettered after the batch whose DLQ row must be (re)written."""
        return [record for record in self.jobs.values() if record.job.status is JobStatus.DEAD]


def jobs_to_load(events: Iterable[StoredEvent]) -> list[str]:
    """Jobs whose state before the batch is needed: touched, but not enqueued in it."""
    enqueued: set[str] = set()
    needed: dict[str, None] = {}
    for event in events:
        if event.type is EventType.ENQUEUED:
            enqueued.add(event.job_id)
        elif event.job_id not in enqueued:
            needed[event.job_id] = None
    return list(needed)


def fold_batch(before: Mapping[str, JobRecord], events: Sequence[StoredEvent]) -> BatchChanges:
    """Fold ``events`` (in position order) over the jobs' states ``before`` them.

    ``before`` must hold every job in ``jobs_to_load(events)``; a missing one, or
    an event the lifecycle forbids, raises ``IllegalTransition``.
    """
    changes = BatchChanges()
    after: dict[str, JobRecord] = {}
    for event in events:
        previous = after.get(event.job_id) or before.get(event.job_id)
        job = apply(previous.job if previous else None, event)
        after[event.job_id] = JobRecord(job, event.position, _dead_letter_reason(event))
        if event.type is EventType.ENQUEUED:
            _add(changes.stats, (job.currency, ENQUEUED), 1, job.amount)
            changes.idempotency.append(idempotency_row(event))
        elif event.type is EventType.COMPLETED:
            _add(changes.settled, settled_key(job, event.occurred_at), 1, job.amount)
        changes.last_position = event.position
    for job_id, record in after.items():
        old = before.get(job_id)
        if old is not None:
            _add(changes.stats, (old.job.currency, old.job.status.value), -1, -old.job.amount)
            if old.job.status is JobStatus.DEAD and record.job.status is not JobStatus.DEAD:
                changes.dlq_removed.append(job_id)
        _add(changes.stats, (record.job.currency, record.job.status.value), 1, record.job.amount)
    changes.jobs = after
    changes.stats = {key: value for key, value in changes.stats.items() if not value.is_zero}
    return changes


def _dead_letter_reason(event: StoredEvent) -> str | None:
    # only a dead job has one, and the only way out of "dead" is another event
    if event.type is EventType.DEAD_LETTERED:
        reason = event.data.get("reason")
        return None if reason is None else str(reason)
    return None


def _add(totals: dict[Any, Totals], key: Any, jobs: int, amount: int) -> None:
    entry = totals.get(key)
    if entry is None:
        totals[key] = entry = Totals()
    entry.add(jobs, amount)


def settled_key(job: Job, completed_at: datetime) -> SettledKey:
    """Where a completed job is summed: its UTC day, currency, user, place and mission."""
    request = job.request
    return (
        to_utc(completed_at).date(),
        job.currency,
        str(request["user_id"]),
        str(request["place_id"]),
        str(request["mission_id"]),
    )


# -- rows --------------------------------------------------------------------------


def job_row(record: JobRecord) -> dict[str, Any]:
    """The ``job_state`` row of a job."""
    job, request = record.job, record.job.request
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "version": job.version,
        "position": record.position,
        "attempts": job.attempts,
        "round_attempts": job.round_attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "due_at": job.due_at,
        "lease_until": job.lease_until,
        "worker": job.worker,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "dead_lettered_at": job.dead_lettered_at,
        "completed_at": job.completed_at,
        "user_id": str(request["user_id"]),
        "place_id": str(request["place_id"]),
        "mission_id": str(request["mission_id"]),
        "amount": job.amount,
        "currency": job.currency,
        "idempotency_key": job.idempotency_key,
        "request": canonical_json(dict(request)).decode(),
    }


def record_from_row(row: Mapping[Any, Any]) -> JobRecord:
    """A ``job_state`` row (as read from SQL or memory) back into a ``JobRecord``."""
    job = Job(
        job_id=row["job_id"],
        status=JobStatus(row["status"]),
        version=row["version"],
        request=orjson.loads(row["request"]),
        max_attempts=row["max_attempts"],
        created_at=to_utc(row["created_at"]),
        updated_at=to_utc(row["updated_at"]),
        due_at=_utc_or_none(row["due_at"]),
        attempts=row["attempts"],
        round_attempts=row["round_attempts"],
        worker=row["worker"],
        lease_until=_utc_or_none(row["lease_until"]),
        last_error=row["last_error"],
        dead_lettered_at=_utc_or_none(row["dead_lettered_at"]),
        completed_at=_utc_or_none(row["completed_at"]),
    )
    # the dead-letter reason lives in the dlq row; a loaded dead job can only be requeued
    return JobRecord(job, row["position"])


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def dlq_row(record: JobRecord) -> dict[str, Any]:
    """The ``dlq`` row of a dead-lettered job."""
    job = record.job
    if job.dead_lettered_at is None:
        raise ValueError(f"job {job.job_id} is not dead-lettered")
    return {
        "job_id": job.job_id,
        "dead_lettered_at": job.dead_lettered_at,
        "position": record.position,
        "failed_reason": job.last_error or record.dead_letter_reason,
        "dead_letter_reason": record.dead_letter_reason,
        "attempts": job.attempts,
        "created_at": job.created_at,
    }


def idempotency_row(event: StoredEvent) -> dict[str, Any]:
    """The ``idempotency`` row an ``enqueued`` event creates."""
    request = event.data["request"]
    return {
        "idempotency_key": str(request["idempotency_key"]),
        "job_id": event.job_id,
        "fingerprint": str(event.data["fingerprint"]),
        "first_seen_at": event.occurred_at,
    }


def stats_row(key: StatsKey, totals: Totals) -> dict[str, Any]:
    return {"currency": key[0], "bucket": key[1], "jobs": totals.jobs, "amount": totals.amount}


def settled_row(key: SettledKey, totals: Totals) -> dict[str, Any]:
    day, currency, user_id, place_id, mission_id = key
    return {
        "day": day,
        "currency": currency,
        "user_id": user_id,
        "place_id": place_id,
        "mission_id": mission_id,
        "jobs": totals.jobs,
        "amount": totals.amount,
    }
