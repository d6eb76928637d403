"""Auditors' reads folded in memory: as-of views and the replay check, with no write at all.

An auditor connects with a role that may only SELECT, maybe to a hot standby,
which refuses every write (scratch tables and temporary tables included). So
these reads never touch a projection table to compute an answer:

* ``fold_until(store, position)``: the log's prefix folded by the same code as
  the SQL runner (``MemoryProjection``);
* ``stats_as_of`` / ``dlq_as_of``: the stats and the DLQ as they stood at a time,
  which resolves to a log position first (``LogReader.position_at``: the prefix
  before the first later event, so a backdated append never counts);
* ``check``: the live projections, read in one snapshot at their own
  checkpoint, compared with a fresh fold of the log up to that checkpoint, and
  money conservation in both (the fresh fold's over the whole log). The live
  set is not caught up first (that would be a write): the report says how far
  behind the log it is.

Memory grows with the number of jobs in the prefix (one small record each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.errors import InvalidRequest
from ledger.events import as_time, to_utc
from ledger.log_reader import LogReader
from ledger.money import format_amount
from projections.memory import MemoryProjection
from projections.queries import DlqEntry, DlqPage
from projections.schema import LIVE
from projections.snapshot import Snapshot, read_snapshot
from projections.stats import CurrencyBalance, QueueStats, balances, stats_from_rows

#: events folded per batch (memory follows the fold's own records, not the batch)
BATCH = 5000


def fold_until(store: LogReader, position: int) -> MemoryProjection:
    """Every read model of the log's first ``position`` events, in memory."""
    projection = MemoryProjection()
    if position > 0:
        projection.replay(store.read_all(until_position=position), BATCH)
    return projection


def stats_as_of(store: LogReader, moment: datetime) -> QueueStats:
    """Queue stats as they stood at ``moment`` (delayed: due after it)."""
    moment = to_utc(moment)
    return fold_until(store, store.position_at(moment)).stored_stats(moment)


def dlq_as_of(store: LogReader, moment: datetime, start: int = 0, end: int = 49) -> DlqPage:
    """The dead-letter queue as it stood at ``moment``, newest first (``start``..``end``)."""
    if start < 0 or end < -1 or (end != -1 and end < start):
        raise InvalidRequest(
            f"invalid range {start}..{end}: need 0 <= start <= end (or end = -1)", field="range"
        )
    projection = fold_until(store, store.position_at(to_utc(moment)))
    rows = dlq_rows(projection)
    page = rows[start:] if end == -1 else rows[start : end + 1]
    entries = dlq_entries(store, page)
    return DlqPage(entries, len(rows), start, end)


def dlq_rows(projection: MemoryProjection) -> list[dict[str, Any]]:
    """The dead-lettered rows of an in-memory fold, newest first."""
    return sorted(
        projection.dlq.values(),
        key=lambda row: (_time(row["dead_lettered_at"]), row["position"]),
        reverse=True,
    )


def dlq_entries(store: LogReader, rows: list[dict[str, Any]]) -> list[DlqEntry]:
    """``dlq_rows`` as API entries, each with its job's request (one read for all)."""
    streams = store.read_streams([row["job_id"] for row in rows])
    return [
        DlqEntry(
            job_id=row["job_id"],
            request=dict(streams[row["job_id"]][0].data["request"]),
            failed_reason=row["failed_reason"],
            dead_letter_reason=row["dead_letter_reason"],
            attempts=int(row["attempts"]),
            created_at=_time(row["created_at"]),
            dead_lettered_at=_time(row["dead_lettered_at"]),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class MemoryCheck:
    """The live projections against a fresh in-memory fold at the live checkpoint."""

    position: int
    log_head: int
    difference_count: int = 0
    differences: list[str] = field(default_factory=list)
    live: list[CurrencyBalance] = field(default_factory=list)
    replayed: list[CurrencyBalance] = field(default_factory=list)

    @property
    def behind(self) -> int:
        """Events in the log that the live projections have not applied yet."""
        return max(0, self.log_head - self.position)

    @property
    def ok(self) -> bool:
        balanced = all(item.balanced for item in (*self.live, *self.replayed))
        return self.difference_count == 0 and balanced

    def problems(self) -> list[str]:
        """One line per problem found (empty when ``ok``)."""
        lines = list(self.differences)
        for name, found in (("live", self.live), ("replayed", self.replayed)):
            lines.extend(
                f"{name}: {item.currency} not conserved: enqueued "
                f"{format_amount(item.enqueued.amount, item.currency)} != accounted "
                f"{format_amount(item.accounted.amount, item.currency)} "
                f"(jobs off by {item.difference.jobs})"
                for item in found
                if not item.balanced
            )
        return lines


def check(store: LogReader, now: datetime, *, limit: int = 1000) -> MemoryCheck:
    """Compare the live projections with a fresh fold of the log up to their checkpoint."""
    live = read_snapshot(store.engine, LIVE)
    projection = fold_until(store, live.position)
    replayed = projection.snapshot()
    # conservation of the fresh fold covers the whole log, even where live lags behind
    projection.replay(store.read_all(after=live.position), BATCH)
    moment = to_utc(now)
    count, differences = _differences(live, replayed, limit)
    return MemoryCheck(
        position=live.position,
        log_head=max(projection.position, live.position),
        difference_count=count,
        differences=differences,
        live=balances(_live_stats(live, moment)),
        replayed=balances(projection.stored_stats(moment), projection.kept_by_jobs()),
    )


def _differences(live: Snapshot, replayed: Snapshot, limit: int) -> tuple[int, list[str]]:
    """Each row only one side has, as ``table: only in live: col=value, …`` (a changed row
    shows up once per side), at most ``limit`` of them and a count of the rest."""
    found: list[str] = []
    total = 0
    for table in LIVE.all:
        columns = [column.name for column in table.columns]
        ours, theirs = live.tables[table.name], replayed.tables[table.name]
        for side, rows, other in (("live", ours, theirs), ("replayed", theirs, ours)):
            for key, row in rows.items():
                if other.get(key) == row:
                    continue
                total += 1
                if len(found) < limit:
                    values = ", ".join(
                        f"{name}={value!r}" for name, value in zip(columns, row, strict=True)
                    )
                    found.append(f"{table.name}: only in {side}: {values}")
    if total > len(found):
        found.append(f"… and {total - len(found)} more rows")
    return total, found


def _live_stats(live: Snapshot, moment: datetime) -> QueueStats:
    """Stats of the live snapshot, counted as ``projections.queries.stats`` counts them."""
    stats_rows = [
        (str(row[0]), str(row[1]), int(row[2]), int(row[3]))
        for row in live.tables[LIVE.queue_stats.name].values()
    ]
    delayed: dict[str, list[int]] = {}
    job_table = live.tables[LIVE.job_state.name]
    columns = [column.name for column in LIVE.job_state.columns]
    for row in job_table.values():
        record = dict(zip(columns, row, strict=True))
        due = record.get("due_at")
        if record.get("status") == "waiting" and due is not None and _time(due) > moment:
            totals = delayed.setdefault(str(record["currency"]), [0, 0])
            totals[0] += 1
            totals[1] += int(record["amount"])
    return stats_from_rows(
        stats_rows,
        [(currency, jobs, amount) for currency, (jobs, amount) in delayed.items()],
        moment,
        live.position,
    )


def _time(value: object) -> datetime:
    moment = as_time(value)  # type: ignore[arg-type]
    if moment is None:
        raise ValueError("a projection row lacks a time it always has")
    return moment
