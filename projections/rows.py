"""Read-model rows: each table's columns, the row builders, and one drain of the fold as rows.

Pure. The builders give each table's column values in one place, so SQL and
memory hold identical rows; times go through the destination's converter
(``as_time`` for memory, a writer's own for SQL). ``change_rows`` turns what a
``Fold.drain`` returned into plain tuples: the form a forked fold hands to the
process that writes (``projections.folder``), and what ``projections.sql``
writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.events import Moment
from ledger.lifecycle import Job
from projections.fold import Changes, JobState

#: a time converter for one destination (``as_time`` for memory, the SQL writer's own)
TimeOut = Callable[[Moment | None], Any]
#: a day converter for one destination
DayOut = Callable[[date], Any]
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's folded state plus what the read models need beyond ``Job``."""

    job: Job
    #: position of the job's last event
    position: int
    #: reason on the ``dead_lettered`` event, while the job is dead-lettered
    dead_letter_reason: str | None = None


#: ``job_state`` columns in the order ``job_values`` gives them
JOB_COLUMNS = (
    "job_id",
    "status",
    "version",
    "position",
    "attempts",
    "round_attempts",
    "max_attempts",
    "last_error",
    "due_at",
    "lease_until",
    "worker",
    "created_at",
    "updated_at",
    "dead_lettered_at",
    "completed_at",
    "user_id",
    "place_id",
    "mission_id",
    "amount",
    "currency",
    "idempotency_key",
    "round",
    "round_amount",
    "paid",
    "reversed",
    "refunded",
    "reference",
    "fee",
    "provider_status",
)
DLQ_COLUMNS = (
    "job_id",
    "dead_lettered_at",
    "position",
    "failed_reason",
    "dead_letter_reason",
    "attempts",
    "created_at",
)
STATS_COLUMNS = ("currency", "bucket", "jobs", "amount")
DAILY_COLUMNS = ("day", "currency", "jobs", "amount", "reversed", "refunded")


def job_values(state: JobState, time: TimeOut) -> tuple[Any, ...]:
    """The ``job_state`` row of a job, in ``JOB_COLUMNS`` order, times through ``time``."""
    return (
        state.job_id,
        state.status,
        state.version,
        state.position,
        state.attempts,
        state.round_attempts,
        state.max_attempts,
        state.last_error,
        time(state.due_at),
        time(state.lease_until),
        state.worker,
        time(state.created_at),
        time(state.updated_at),
        time(state.dead_lettered_at),
        time(state.completed_at),
        state.user_id,
        state.place_id,
        state.mission_id,
        state.amount,
        state.currency,
        state.idempotency_key,
        state.round,
        state.round_amount,
        state.paid,
        state.reversed,
        state.refunded,
        state.reference,
        state.fee,
        state.provider_status,
    )


def dlq_values(state: JobState, time: TimeOut) -> tuple[Any, ...]:
    """The ``dlq`` row of a dead-lettered job, in ``DLQ_COLUMNS`` order."""
    if state.dead_lettered_at is None:
        raise ValueError(f"job {state.job_id} is not dead-lettered")
    return (
        state.job_id,
        time(state.dead_lettered_at),
        state.position,
        state.last_error or state.dead_letter_reason,
        state.dead_letter_reason,
        state.attempts,
        time(state.created_at),
    )


def state_from_row(row: Mapping[Any, Any]) -> JobState:
    """A ``job_state`` row (as read from SQL) back into a held ``JobState``."""
    # the dead-letter reason lives in the dlq row; a loaded dead job can only be requeued
    return JobState(
        row["job_id"],
        row["status"],
        row["version"],
        row["updated_at"],
        row["due_at"],
        row["attempts"],
        row["round_attempts"],
        row["worker"],
        row["lease_until"],
        row["last_error"],
        row["dead_lettered_at"],
        row["completed_at"],
        row["amount"],
        row["round"],
        row["round_amount"],
        row["paid"],
        row["reversed"],
        row["refunded"],
        row["reference"],
        row["fee"],
        row["provider_status"],
        position=row["position"],
        created_at=row["created_at"],
        max_attempts=row["max_attempts"],
        user_id=row["user_id"],
        place_id=row["place_id"],
        mission_id=row["mission_id"],
        currency=row["currency"],
        idempotency_key=row["idempotency_key"],
        stored_status=row["status"],
    )


def record_from_row(row: Mapping[Any, Any], request: Mapping[str, Any]) -> JobRecord:
    """A ``job_state`` row (as read from SQL) and the job's request as a ``JobRecord``."""
    return JobRecord(state_from_row(row).to_job(request), row["position"])


def named(columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A row tuple as a dict keyed by column name."""
    return dict(zip(columns, values, strict=True))


@dataclass(slots=True)
class ChangeRows:
    """One drain of the fold as rows in each table's column order (picklable)."""

    #: ``job_state`` rows of jobs with no stored row yet, and of jobs to overwrite
    new_jobs: list[Row] = field(default_factory=list)
    changed_jobs: list[Row] = field(default_factory=list)
    dlq: list[Row] = field(default_factory=list)
    dlq_removed: list[str] = field(default_factory=list)
    #: increments of ``queue_stats`` and ``daily_totals``
    stats: list[Row] = field(default_factory=list)
    daily: list[Row] = field(default_factory=list)
    #: position of the last event folded, and how many events were folded
    position: int = 0
    events: int = 0


def change_rows(changes: Changes, time: TimeOut, day: DayOut, events: int) -> ChangeRows:
    """``changes`` (a drain of ``events`` events) as rows; times, days through ``time``, ``day``."""
    return ChangeRows(
        new_jobs=[job_values(state, time) for state in changes.new_jobs],
        changed_jobs=[job_values(state, time) for state in changes.changed_jobs],
        dlq=[dlq_values(state, time) for state in changes.dlq],
        dlq_removed=changes.dlq_removed,
        stats=[(*key, totals.jobs, totals.amount) for key, totals in changes.stats.items()],
        daily=[
            (day(d), cur, t.jobs, t.amount, t.reversed, t.refunded)
            for (d, cur), t in changes.daily.items()
        ],
        position=changes.position,
        events=events,
    )
