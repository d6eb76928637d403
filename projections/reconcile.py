"""Checks for ``ledger replay --check`` and ``ledger reconcile``.

* ``conservation(engine, now)``: per currency, enqueued = completed + waiting +
  delayed + processing + failed + dlq, from one table set.
* ``diff_tables(conn, LIVE, SCRATCH)``: every row that differs between two table
  sets, computed in SQL (``EXCEPT`` both ways), so memory stays flat.
* ``check(store)``: replay the log into the scratch tables up to the live
  checkpoint (a fresh, independent fold), then diff scratch against live and
  check conservation on both, all in one read snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.errors import ProjectionBusy
from ledger.events import to_utc
from ledger.log_reader import LogReader
from projections import queries
from projections.runner import DEFAULT_BATCH_SIZE, OnBatch, Projector
from projections.schema import LIVE, SCRATCH, ProjectionTables
from projections.sql import read_checkpoint, reading
from projections.stats import CurrencyBalance, balances

#: attempts to catch the live set standing still long enough to compare it
CHECK_ATTEMPTS = 5


def conservation(
    engine: Engine, now: datetime, tables: ProjectionTables = LIVE
) -> list[CurrencyBalance]:
    """Money conservation per currency in one table set (see ``CurrencyBalance.balanced``):
    the jobs' amounts over their states, and paid = net + reversed + refunded with the net
    summed job by job."""
    return balances(queries.stats(engine, now, tables), queries.kept_by_jobs(engine, tables))


@dataclass(frozen=True, slots=True)
class Difference:
    """A row of ``table`` that only ``side`` has (a changed row shows up once per side)."""

    table: str
    side: str
    row: dict[str, Any]

    def describe(self) -> str:
        values = ", ".join(f"{key}={value!r}" for key, value in self.row.items())
        return f"{self.table}: only in {self.side}: {values}"


def diff_tables(
    conn: Connection,
    left: ProjectionTables = LIVE,
    right: ProjectionTables = SCRATCH,
    *,
    limit: int = 20,
) -> tuple[int, list[Difference]]:
    """Count of differing rows between two sets, and up to ``limit`` of them."""
    count = 0
    shown: list[Difference] = []
    for a, b in zip(left.all, right.all, strict=True):
        for side, (one, other) in ((left.name, (a, b)), (right.name, (b, a))):
            names = [column.name for column in a.columns]
            query = sa.select(*(one.c[n] for n in names)).except_(
                sa.select(*(other.c[n] for n in names))
            )
            found = query.subquery()
            count += int(conn.execute(sa.select(sa.func.count()).select_from(found)).scalar_one())
            if len(shown) < limit:
                rows = conn.execute(sa.select(found).limit(limit - len(shown)))
                shown.extend(Difference(a.name, side, dict(row._mapping)) for row in rows)
    return count, shown


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The outcome of ``check``: differences between live and a fresh replay, and balances."""

    position: int
    difference_count: int
    differences: list[Difference] = field(default_factory=list)
    live: list[CurrencyBalance] = field(default_factory=list)
    replayed: list[CurrencyBalance] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        balanced = all(item.balanced for item in (*self.live, *self.replayed))
        return self.difference_count == 0 and balanced

    def problems(self) -> list[str]:
        """One line per problem found (empty when ``ok``)."""
        lines = [difference.describe() for difference in self.differences]
        if self.difference_count > len(self.differences):
            lines.append(f"… and {self.difference_count - len(self.differences)} more rows")
        for name, found in (("live", self.live), ("replayed", self.replayed)):
            lines.extend(
                f"{name}: {item.currency} not conserved: enqueued {item.enqueued.amount} != "
                f"accounted {item.accounted.amount} (jobs off by {item.difference.jobs})"
                for item in found
                if not item.balanced
            )
        return lines


def check(
    store: LogReader,
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: OnBatch | None = None,
    limit: int = 20,
) -> CheckReport:
    """Replay into scratch up to the live checkpoint and compare (``ledger replay --check``).

    If the live set moves on while we replay (a runner is following), scratch is
    caught up to the new checkpoint and compared again, up to ``CHECK_ATTEMPTS`` times.
    """
    moment = to_utc(now) if now is not None else datetime.now(UTC)
    scratch = Projector(store, SCRATCH, batch_size)
    engine = store.engine
    scratch.reset()
    for _ in range(CHECK_ATTEMPTS):
        target = queries.checkpoint(engine, LIVE)
        if scratch.checkpoint() > target:  # a rebuild moved live back: start over
            scratch.reset()
        scratch.catch_up(until_position=target, on_batch=on_batch)
        with reading(engine) as conn:
            if read_checkpoint(conn, LIVE) != target or read_checkpoint(conn, SCRATCH) != target:
                continue
            count, shown = diff_tables(conn, LIVE, SCRATCH, limit=limit)
        return CheckReport(
            position=target,
            difference_count=count,
            differences=shown,
            live=conservation(engine, moment, LIVE),
            replayed=conservation(engine, moment, SCRATCH),
        )
    raise ProjectionBusy(
        "the live projections kept moving during the check; pause `ledger project --follow` "
        "and retry"
    )
