"""The live read models as of the log's head, for GET requests and the CLI's reads.

Reads only read: each answer is the projection tables, read in one snapshot at
their checkpoint, plus the tail of the log after it folded in memory
(``projections.tail``). So a read right after a write sees it, whether or not
the follower has folded it yet, and nothing here takes the write lock, moves a
checkpoint or writes a row: a read-only role, or a hot standby, can answer.
Every answer says the log position it stands at (``asOfPosition``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from ledger.events import as_time
from ledger.lifecycle import JobStatus
from ledger.log_reader import LogReader
from projections import queries
from projections.as_of import dlq_entries
from projections.fold import DayTotals, JobState, Totals
from projections.queries import DlqPage, TotalRow, TotalsAsked
from projections.rows import DLQ_COLUMNS, dlq_values, named
from projections.schema import LIVE, ProjectionTables
from projections.sql import read_checkpoint, reading
from projections.stats import QueueStats, stats_from_rows
from projections.tail import Tail, fold_tail


@dataclass(frozen=True, slots=True)
class SettledTotals:
    """Settled totals as of log position ``position``."""

    rows: list[TotalRow]
    position: int


@dataclass(frozen=True, slots=True)
class ReadModels:
    """The live projections plus the tail of the log they have not folded. Writes nothing."""

    store: LogReader
    tables: ProjectionTables = LIVE

    @contextmanager
    def _snapshot(self) -> Iterator[tuple[Connection, Tail]]:
        with reading(self.store.engine) as conn:
            checkpoint = read_checkpoint(conn, self.tables)
            yield conn, fold_tail(self.store, conn, self.tables, checkpoint)

    def stats(self, now: datetime) -> QueueStats:
        """Queue stats as of ``now`` and the log's head."""
        with self._snapshot() as (conn, tail):
            rows, delayed, overdue = queries.stats_rows(conn, self.tables, now)
        summed: dict[tuple[str, str], Totals] = {}
        for currency, bucket, jobs, amount in rows:
            summed.setdefault((currency, bucket), Totals()).add(jobs, amount)
        for key, delta in tail.stats.items():
            summed.setdefault(key, Totals()).add(delta.jobs, delta.amount)
        waiting_later: dict[str, Totals] = {}
        for currency, jobs, amount in delayed:
            waiting_later.setdefault(currency, Totals()).add(jobs, amount)
        for currency, delta in tail.delayed_change(now).items():
            waiting_later.setdefault(currency, Totals()).add(delta.jobs, delta.amount)
        late: dict[str, Totals] = {}
        for currency, jobs, amount in overdue:
            late.setdefault(currency, Totals()).add(jobs, amount)
        for currency, delta in tail.overdue_change(now).items():
            late.setdefault(currency, Totals()).add(delta.jobs, delta.amount)
        return stats_from_rows(
            [(cur, bucket, t.jobs, t.amount) for (cur, bucket), t in summed.items()],
            [(cur, t.jobs, t.amount) for cur, t in waiting_later.items()],
            now,
            tail.position,
            [(cur, t.jobs, t.amount) for cur, t in late.items() if not t.is_zero],
        )

    def dlq_page(self, start: int = 0, end: int = 49) -> DlqPage:
        """The dead-letter queue newest first, ``start..end`` inclusive (``end=-1``: all).

        Jobs the tail dead-letters are the newest (event time never runs backwards
        in log order), so they come first, then the table's rows but for the jobs
        the tail touched.
        """
        queries.check_range(start, end)
        with self._snapshot() as (conn, tail):
            added = sorted(
                (named(DLQ_COLUMNS, dlq_values(state, as_time)) for state in tail.dlq_added),
                key=lambda row: (as_time(row["dead_lettered_at"]), row["position"]),
                reverse=True,
            )
            leave_out = sorted({*tail.dlq_removed, *(row["job_id"] for row in added)})
            count = queries.dlq_count(conn, self.tables, leave_out) + len(added)
            last = None if end == -1 else end + 1
            first_rows = added[start:last]
            stored = []
            if last is None or last > len(added):
                offset = max(0, start - len(added))
                limit = None if last is None else last - max(start, len(added))
                stored = queries.dlq_slice(conn, self.tables, offset, limit, leave_out)
        entries = [*dlq_entries(self.store, first_rows), *stored]
        return DlqPage(entries, count, start, end, tail.position)

    def totals(self, asked: TotalsAsked) -> SettledTotals:
        """Settled (completed) amounts as ``queries.totals`` counts them, at the log's head."""
        with self._snapshot() as (conn, tail):
            rows = queries.totals_rows(conn, asked, self.tables)
        if not tail.events:
            return SettledTotals(rows, tail.position)
        summed: dict[tuple[str, tuple[Any, ...]], DayTotals] = {}
        for row in rows:
            key = (row.currency, tuple(row.group[name] for name in asked.group_by))
            summed.setdefault(key, DayTotals()).merge(
                DayTotals(row.jobs, row.amount, row.reversed, row.refunded)
            )
        for sign, states in ((-1, tail.before), (1, tail.after)):
            for state in states.values():
                key_of = _settled_key(state, asked)
                if key_of is not None:
                    summed.setdefault(key_of, DayTotals()).merge(
                        DayTotals(
                            sign, sign * state.paid, sign * state.reversed, sign * state.refunded
                        )
                    )
        merged = [
            TotalRow(
                currency,
                dict(zip(asked.group_by, group, strict=True)),
                t.jobs,
                t.amount,
                t.reversed,
                t.refunded,
            )
            for (currency, group), t in sorted(summed.items(), key=lambda item: item[0])
            if not t.is_zero
        ]
        return SettledTotals(merged, tail.position)


def _settled_key(state: JobState, asked: TotalsAsked) -> tuple[str, tuple[Any, ...]] | None:
    """The group a settled job counts in for ``asked`` (``None``: it does not count)."""
    settled = as_time(state.completed_at)
    if state.status != JobStatus.COMPLETED.value or settled is None:
        return None
    zone = asked.local_zone
    day: date = (settled if zone is None else settled.astimezone(zone)).date()
    if asked.start is not None and day < asked.start:
        return None
    if asked.end is not None and day > asked.end:
        return None
    if asked.currency is not None and state.currency != asked.currency:
        return None
    group = tuple(day if name == "day" else getattr(state, name) for name in asked.group_by)
    return state.currency, group
