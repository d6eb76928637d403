"""The read models held in memory: as-of replays of small logs, and the independent fold.

Same fold, same rows as the SQL tables (``projections.fold``, ``projections.rows``),
so a snapshot of memory and a snapshot of SQL compare equal when both folded the
same events.
Memory grows with the number of jobs: use the scratch tables for large logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from ledger.events import StoredEvent, as_time
from projections.fold import DailyKey, DayTotals, Fold, JobState, StatsKey, Totals
from projections.rows import (
    DLQ_COLUMNS,
    JOB_COLUMNS,
    JobRecord,
    dlq_values,
    job_values,
    named,
)
from projections.snapshot import Snapshot
from projections.stats import QueueStats, stats_from_jobs, stats_from_rows


def batched(events: Iterable[StoredEvent], size: int) -> Iterator[list[StoredEvent]]:
    """Consecutive lists of at most ``size`` events (``itertools.batched`` is 3.12+)."""
    iterator = iter(events)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class MemoryProjection:
    """Every read model as dicts, folded with the same code as the SQL runner."""

    #: every job ever enqueued (the fold's own records: always their current state)
    states: dict[str, JobState] = field(default_factory=dict)
    dlq: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[StatsKey, Totals] = field(default_factory=dict)
    daily: dict[DailyKey, DayTotals] = field(default_factory=dict)
    position: int = 0
    _fold: Fold = field(default_factory=Fold, repr=False)

    @property
    def jobs(self) -> dict[str, JobRecord]:
        """Each job's folded state as a ``JobRecord`` (built on each call)."""
        return {
            job_id: JobRecord(state.to_job(), state.position, state.dead_letter_reason)
            for job_id, state in self.states.items()
        }

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold one batch of events (positions after ``self.position``, in order)."""
        if not events:
            return
        # a completed job's state leaves the fold at a drain; a later reversal needs it back
        fold = self._fold
        wanted = {e.job_id for e in events if e.job_id not in fold.jobs and e.job_id in self.states}
        if wanted:
            fold.hold(self.states[job_id] for job_id in wanted)
        fold.fold_events(events)
        changes = self._fold.drain()
        for state in changes.jobs:
            self.states[state.job_id] = state
        for job_id in changes.dlq_removed:
            del self.dlq[job_id]
        for state in changes.dlq:
            self.dlq[state.job_id] = named(DLQ_COLUMNS, dlq_values(state, as_time))
        _merge(self.stats, changes.stats)
        for key, day in changes.daily.items():
            self.daily.setdefault(key, DayTotals()).merge(day)
        self.position = changes.position

    def replay(self, events: Iterable[StoredEvent], batch_size: int = 1000) -> MemoryProjection:
        """Fold a whole stream of events, batch by batch; returns ``self``."""
        for batch in batched(events, batch_size):
            self.apply(batch)
        return self

    def snapshot(self) -> Snapshot:
        """Every table's rows, comparable with ``projections.snapshot.read_snapshot``."""
        return Snapshot.of(
            position=self.position,
            job_state=[named(JOB_COLUMNS, job_values(s, as_time)) for s in self.states.values()],
            queue_stats=[
                {"currency": cur, "bucket": bucket, "jobs": t.jobs, "amount": t.amount}
                for (cur, bucket), t in self.stats.items()
            ],
            dlq=list(self.dlq.values()),
            daily_totals=[
                {
                    "day": day,
                    "currency": cur,
                    "jobs": t.jobs,
                    "amount": t.amount,
                    "reversed": t.reversed,
                    "refunded": t.refunded,
                }
                for (day, cur), t in self.daily.items()
            ],
        )

    def kept_by_jobs(self) -> dict[str, int]:
        """Per currency, what payees kept, summed job by job."""
        kept: dict[str, int] = {}
        for state in self.states.values():
            kept[state.currency] = kept.get(state.currency, 0) + (
                state.paid - state.reversed - state.refunded
            )
        return kept

    def queue_stats(self, now: datetime) -> QueueStats:
        """Stats counted straight from the jobs (the independent fold)."""
        return stats_from_jobs((record.job for record in self.jobs.values()), now, self.position)

    def stored_stats(self, now: datetime) -> QueueStats:
        """Stats the way ``projections.queries.stats`` reads SQL: the incremental
        ``queue_stats`` rows, with delayed jobs moved out of "waiting" at ``now``."""
        delayed: dict[str, Totals] = {}
        for record in self.jobs.values():
            if record.job.is_delayed(now):
                delayed.setdefault(record.job.currency, Totals()).add(1, record.job.amount)
        return stats_from_rows(
            [(cur, bucket, t.jobs, t.amount) for (cur, bucket), t in self.stats.items()],
            [(cur, t.jobs, t.amount) for cur, t in delayed.items()],
            now,
            self.position,
        )


def _merge(target: dict[Any, Totals], deltas: dict[Any, Totals]) -> None:
    for key, delta in deltas.items():
        entry = target.setdefault(key, Totals())
        entry.add(delta.jobs, delta.amount)
        if entry.is_zero:
            del target[key]
