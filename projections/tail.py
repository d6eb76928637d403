"""The tail of the log the live projections have not folded yet, folded in memory.

A read answers from the projection tables at their checkpoint plus this fold of
the events after it, so it sees every committed write (read-your-writes)
without writing: the one follower (``Projector.follow``) is the only writer of
the tables. The jobs the tail touches are loaded from the tables in the
reader's own snapshot, at the checkpoint, and folded by the same ``Fold`` as
the runner; the answer is the tables' rows with what the fold changed applied.

Memory follows the tail: a follower that keeps up leaves a few events to fold.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from ledger.events import as_time
from ledger.lifecycle import JobStatus
from ledger.log_reader import LogReader
from projections.fold import Fold, JobState, RawEvent, StatsKey, Totals
from projections.schema import ProjectionTables
from projections.sql import load_states

#: events read per page of the tail
PAGE_SIZE = 5000


@dataclass(frozen=True, slots=True)
class Tail:
    """What the events after ``checkpoint``, up to ``position``, change in the read models."""

    checkpoint: int
    position: int
    #: the stored state (at the checkpoint) of each touched job that has a row
    before: dict[str, JobState] = field(default_factory=dict)
    #: every touched job's state after the tail
    after: dict[str, JobState] = field(default_factory=dict)
    #: ``queue_stats`` deltas
    stats: dict[StatsKey, Totals] = field(default_factory=dict)
    #: jobs dead-lettered in the tables that the tail took out of the DLQ
    dlq_removed: list[str] = field(default_factory=list)
    #: jobs the tail leaves dead-lettered (their rows are new or rewritten)
    dlq_added: list[JobState] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Events in the tail."""
        return self.position - self.checkpoint

    def overdue_change(self, now: datetime) -> dict[str, Totals]:
        """Per currency, how the tail changes the overdue payouts (submitted, due by ``now``)."""
        change: dict[str, Totals] = {}
        for sign, states in ((-1, self.before), (1, self.after)):
            for state in states.values():
                if is_overdue(state, now):
                    change.setdefault(state.currency, Totals()).add(sign, sign * state.amount)
        return change

    def delayed_change(self, now: datetime) -> dict[str, Totals]:
        """Per currency, how the tail changes the delayed jobs (waiting, due after ``now``)."""
        change: dict[str, Totals] = {}
        for sign, states in ((-1, self.before), (1, self.after)):
            for state in states.values():
                if is_delayed(state, now):
                    change.setdefault(state.currency, Totals()).add(sign, sign * state.amount)
        return change


def fold_tail(
    store: LogReader, conn: Connection, tables: ProjectionTables, checkpoint: int
) -> Tail:
    """Fold the log after ``checkpoint``, which the caller read in ``conn``'s snapshot of
    ``tables`` (the touched jobs are loaded in it, so they stand at that checkpoint)."""
    rows: list[RawEvent] = [
        (e.position, e.job_id, e.version, e.type.value, e.data, e.occurred_at, e.actor)
        for e in store.read_all(after=checkpoint, page_size=PAGE_SIZE)
    ]
    if not rows:
        return Tail(checkpoint, checkpoint)
    fold = Fold()
    fold.position = checkpoint
    stored = load_states(conn, tables, fold.missing(rows))
    before = {state.job_id: copy.copy(state) for state in stored}
    fold.hold(stored)
    fold.fold(rows)
    changes = fold.drain()
    return Tail(
        checkpoint=checkpoint,
        position=changes.position,
        before=before,
        after={state.job_id: state for state in changes.jobs},
        stats=changes.stats,
        dlq_removed=changes.dlq_removed,
        dlq_added=changes.dlq,
    )


def is_delayed(state: JobState, now: datetime) -> bool:
    """Waiting, and due after ``now`` (what the stats call delayed)."""
    if state.status != JobStatus.WAITING.value or state.due_at is None:
        return False
    due = as_time(state.due_at)
    return due is not None and due > now


def is_overdue(state: JobState, now: datetime) -> bool:
    """Submitted, and due for confirmation by ``now`` (what the stats call overdue)."""
    if state.status != JobStatus.SUBMITTED.value or state.due_at is None:
        return False
    due = as_time(state.due_at)
    return due is not None and due <= now
