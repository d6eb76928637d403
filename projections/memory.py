"""The read models held in memory: as-of replays of small logs, and the independent fold.

Same fold, same rows as the SQL tables (``projections.fold``), so a snapshot of
memory and a snapshot of SQL compare equal when both folded the same events.
Memory grows with the number of jobs: use the scratch tables for large logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from ledger.events import StoredEvent
from projections.fold import (
    JobRecord,
    SettledKey,
    StatsKey,
    Totals,
    dlq_row,
    fold_batch,
    job_row,
    jobs_to_load,
    settled_row,
    stats_row,
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

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    dlq: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[StatsKey, Totals] = field(default_factory=dict)
    settled: dict[SettledKey, Totals] = field(default_factory=dict)
    position: int = 0

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold one batch of events (positions after ``self.position``, in order)."""
        if not events:
            return
        before = {job_id: self.jobs[job_id] for job_id in jobs_to_load(events)}
        changes = fold_batch(before, events)
        self.jobs.update(changes.jobs)
        for job_id in changes.dlq_removed:
            del self.dlq[job_id]
        for record in changes.dlq:
            self.dlq[record.job.job_id] = dlq_row(record)
        for row in changes.idempotency:
            self.idempotency[row["idempotency_key"]] = row
        _merge(self.stats, changes.stats)
        _merge(self.settled, changes.settled)
        self.position = changes.last_position

    def replay(self, events: Iterable[StoredEvent], batch_size: int = 1000) -> MemoryProjection:
        """Fold a whole stream of events, batch by batch; returns ``self``."""
        for batch in batched(events, batch_size):
            self.apply(batch)
        return self

    def snapshot(self) -> Snapshot:
        """Every table's rows, comparable with ``projections.snapshot.read_snapshot``."""
        return Snapshot.of(
            position=self.position,
            job_state=[job_row(record) for record in self.jobs.values()],
            queue_stats=[stats_row(key, value) for key, value in self.stats.items()],
            dlq=list(self.dlq.values()),
            idempotency=list(self.idempotency.values()),
            settled_totals=[settled_row(key, value) for key, value in self.settled.items()],
        )

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
