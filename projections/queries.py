"""Reading the projections: what the CLI and the HTTP API answer.

Every function takes an engine (and optionally ``tables=SCRATCH`` to read an
as-of replay) and returns plain dataclasses; ``as_api()`` gives the JSON object
of the matching HTTP endpoint. Callers format, these functions only read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.errors import InvalidRequest
from ledger.events import epoch_ms, to_utc
from ledger.request import wire_settlement
from ledger.schema import events
from projections.days import local_day, midnight, utc_day
from projections.rows import JobRecord, record_from_row
from projections.schema import (
    COMPLETED_ROWS,
    LIVE,
    SUBMITTED_ROWS,
    WAITING_ROWS,
    ProjectionTables,
)
from projections.sql import read_checkpoint, reading
from projections.stats import QueueStats, stats_from_rows

#: what ``totals`` can group by (currency is always a group)
GROUPS = ("day", "user_id", "place_id", "mission_id")


def checkpoint(engine: Engine, tables: ProjectionTables = LIVE) -> int:
    """The last log position folded into ``tables``."""
    with reading(engine) as conn:
        return read_checkpoint(conn, tables)


# -- stats -------------------------------------------------------------------------


def stats(engine: Engine, now: datetime, tables: ProjectionTables = LIVE) -> QueueStats:
    """Queue stats as of ``now`` ("delayed" = waiting and due after ``now``)."""
    with reading(engine) as conn:
        position = read_checkpoint(conn, tables)
        rows, delayed, overdue = stats_rows(conn, tables, now)
    return stats_from_rows(rows, delayed, now, position, overdue)


StatsRow = tuple[str, str, int, int]
#: (currency, jobs, amount) of the jobs counted at query time (delayed, overdue)
CurrencyRow = tuple[str, int, int]


def stats_rows(
    conn: Connection, tables: ProjectionTables, now: datetime
) -> tuple[list[StatsRow], list[CurrencyRow], list[CurrencyRow]]:
    """``queue_stats`` rows (currency, bucket, jobs, amount), the delayed jobs and the
    overdue payouts (currency, jobs, amount) as of ``now``, in the caller's read transaction."""
    table = tables.queue_stats
    rows = conn.execute(sa.select(table.c.currency, table.c.bucket, table.c.jobs, table.c.amount))
    stats = [(str(c), str(b), int(j), int(a)) for c, b, j, a in rows]
    delayed = [
        (str(c), int(j), int(a or 0)) for c, j, a in conn.execute(delayed_query(tables, now))
    ]
    overdue = [
        (str(c), int(j), int(a or 0)) for c, j, a in conn.execute(overdue_query(tables, now))
    ]
    return stats, delayed, overdue


def delayed_query(tables: ProjectionTables, now: datetime) -> sa.Select[Any]:
    """Jobs and amounts per currency of the waiting jobs due after ``now``."""
    jobs = tables.job_state
    return (
        sa.select(jobs.c.currency, sa.func.count(), sa.func.sum(jobs.c.amount))
        # the partial index's own condition, as text: a bound status would not match it
        .where(WAITING_ROWS, jobs.c.due_at > to_utc(now))
        .group_by(jobs.c.currency)
    )


def kept_by_jobs(engine: Engine, tables: ProjectionTables = LIVE) -> dict[str, int]:
    """Per currency, what payees kept, summed job by job (a scan of ``job_state``)."""
    jobs = tables.job_state
    kept = sa.func.sum(jobs.c.paid - jobs.c.reversed - jobs.c.refunded)
    query = sa.select(jobs.c.currency, kept).group_by(jobs.c.currency)
    with reading(engine) as conn:
        return {currency: int(total or 0) for currency, total in conn.execute(query)}


def overdue_query(tables: ProjectionTables, now: datetime) -> sa.Select[Any]:
    """Jobs and amounts per currency of the submitted payouts due for confirmation by ``now``."""
    jobs = tables.job_state
    return (
        sa.select(jobs.c.currency, sa.func.count(), sa.func.sum(jobs.c.amount))
        .where(SUBMITTED_ROWS, jobs.c.due_at <= to_utc(now))
        .group_by(jobs.c.currency)
    )


# -- dead-letter queue -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One dead-lettered job."""

    job_id: str
    request: dict[str, Any]
    failed_reason: str | None
    dead_letter_reason: str | None
    attempts: int
    created_at: datetime
    dead_lettered_at: datetime

    def as_api(self) -> dict[str, Any]:
        request = self.request
        return {
            "id": self.job_id,
            "data": wire_settlement(request),
            "failedReason": self.failed_reason,
            "attempts": self.attempts,
            "createdAt": epoch_ms(self.created_at),
            "deadLetteredAt": epoch_ms(self.dead_lettered_at),
        }


@dataclass(frozen=True, slots=True)
class DlqPage:
    """Dead-lettered jobs ``start``..``end`` (inclusive, newest first) of ``count``,
    as of log position ``position`` (``None``: the tables' own checkpoint, not read)."""

    jobs: list[DlqEntry]
    count: int
    start: int
    end: int
    position: int | None = None

    def as_api(self) -> dict[str, Any]:
        """The object ``GET /api/queue/failed`` returns (``ledger dlq list --json``)."""
        answer: dict[str, Any] = {
            "jobs": [entry.as_api() for entry in self.jobs],
            "count": self.count,
            "range": {"start": self.start, "end": self.end},
        }
        if self.position is not None:
            answer["asOfPosition"] = self.position
        return answer


def check_range(start: int, end: int) -> None:
    """``InvalidRequest`` unless ``0 <= start <= end`` or ``end == -1``."""
    if start < 0 or end < -1 or (end != -1 and end < start):
        raise InvalidRequest(
            f"invalid range {start}..{end}: need 0 <= start <= end (or end = -1)", field="range"
        )


def dlq_page(
    engine: Engine, start: int = 0, end: int = 49, tables: ProjectionTables = LIVE
) -> DlqPage:
    """Dead-lettered jobs, newest first; ``start``/``end`` are inclusive indexes like LRANGE.

    ``end = -1`` means "to the last one".
    """
    check_range(start, end)
    with reading(engine) as conn:
        count = dlq_count(conn, tables)
        entries = dlq_slice(conn, tables, start, None if end == -1 else end - start + 1)
    return DlqPage(entries, count, start, end)


def dlq_count(conn: Connection, tables: ProjectionTables, leave_out: Sequence[str] = ()) -> int:
    """Rows in the dead-letter view, but for the jobs ``leave_out`` names."""
    dlq = tables.dlq
    query = sa.select(sa.func.count()).select_from(dlq)
    if leave_out:
        query = query.where(dlq.c.job_id.not_in(leave_out))
    return int(conn.execute(query).scalar_one())


def dlq_slice(
    conn: Connection,
    tables: ProjectionTables,
    offset: int,
    limit: int | None,
    leave_out: Sequence[str] = (),
) -> list[DlqEntry]:
    """Dead-lettered jobs, newest first, from ``offset`` (at most ``limit``), but for
    the jobs ``leave_out`` names."""
    dlq = tables.dlq
    query = (
        sa.select(dlq, events.c.data)
        .join(events, _enqueued_event(dlq.c.job_id))
        .order_by(dlq.c.dead_lettered_at.desc(), dlq.c.position.desc())
        .offset(offset)
    )
    if leave_out:
        query = query.where(dlq.c.job_id.not_in(leave_out))
    if limit is not None:
        query = query.limit(limit)
    return [
        DlqEntry(
            job_id=row.job_id,
            request=_request(row.data),
            failed_reason=row.failed_reason,
            dead_letter_reason=row.dead_letter_reason,
            attempts=row.attempts,
            created_at=to_utc(row.created_at),
            dead_lettered_at=to_utc(row.dead_lettered_at),
        )
        for row in conn.execute(query)
    ]


# -- jobs and keys -----------------------------------------------------------------


def job(engine: Engine, job_id: str, tables: ProjectionTables = LIVE) -> JobRecord | None:
    """A job's projected state, or ``None``."""
    table = tables.job_state
    query = (
        sa.select(table, events.c.data)
        .join(events, _enqueued_event(table.c.job_id))
        .where(table.c.job_id == job_id)
    )
    with reading(engine) as conn:
        row = conn.execute(query).first()
    return None if row is None else record_from_row(row._mapping, _request(row.data))


def _enqueued_event(job_id: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Join condition for a job's ``enqueued`` event: its first (``UNIQUE(job_id, version)``).

    The request never changes after it, so read models do not copy it: they join it.
    """
    return sa.and_(events.c.job_id == job_id, events.c.version == 1)


def _request(data: str) -> dict[str, Any]:
    request: dict[str, Any] = orjson.loads(data)["request"]
    return request


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """What an API answers on a repeated idempotency key."""

    key: str
    job_id: str
    fingerprint: str
    first_seen_at: datetime
    state: str


def idempotency(
    engine: Engine, key: str, tables: ProjectionTables = LIVE
) -> IdempotencyEntry | None:
    """The job an idempotency key maps to, with the job's current state; ``None`` if unseen.

    The key's ``enqueued`` event is found by the log's own unique index on the
    key; it holds the request's fingerprint and the time the key was first seen,
    which never change, so no read model copies them. Joined with ``tables``'
    ``job_state``, a key counts from the moment that set has folded its job
    (an as-of replay does not know a key enqueued after its bounds).
    """
    jobs = tables.job_state
    query = (
        sa.select(events.c.job_id, events.c.data, events.c.occurred_at, jobs.c.status)
        .join(jobs, jobs.c.job_id == events.c.job_id)
        .where(events.c.idempotency_key == key)
    )
    with reading(engine) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    fingerprint = str(orjson.loads(row.data)["fingerprint"])
    return IdempotencyEntry(key, row.job_id, fingerprint, to_utc(row.occurred_at), row.status)


# -- settled totals ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TotalRow:
    """Completed settlements of one group: ``group`` maps each grouped-by field to its value."""

    currency: str
    group: dict[str, Any]
    jobs: int
    #: paid (gross), and what came back of it
    amount: int
    reversed: int = 0
    refunded: int = 0

    @property
    def net(self) -> int:
        return self.amount - self.reversed - self.refunded


def totals(
    engine: Engine,
    *,
    start: date | None = None,
    end: date | None = None,
    group_by: Sequence[str] = ("day",),
    currency: str | None = None,
    tables: ProjectionTables = LIVE,
    zone: ZoneInfo | None = None,
) -> list[TotalRow]:
    """Completed amounts per currency and per ``group_by`` (any of ``GROUPS``).

    ``start``/``end`` are business days in ``zone`` (default UTC), both
    inclusive. Rows are ordered by currency then by the groups. In UTC, grouped
    by day alone (or by currency only) they come from ``daily_totals``, a few
    rows per day; finer groups, and days of another zone, sum the completed jobs
    of ``job_state`` (by its index on the completed jobs' ``completed_at``).
    """
    with reading(engine) as conn:
        return totals_rows(conn, TotalsAsked(start, end, tuple(group_by), currency, zone), tables)


@dataclass(frozen=True, slots=True)
class TotalsAsked:
    """What a caller of ``totals`` asks for: days ``start..end`` (inclusive, in ``zone``,
    default UTC), grouped by ``group_by`` (any of ``GROUPS``), of one currency or all."""

    start: date | None = None
    end: date | None = None
    group_by: tuple[str, ...] = ("day",)
    currency: str | None = None
    zone: ZoneInfo | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.group_by if name not in GROUPS]
        if unknown:
            raise InvalidRequest(f"cannot group by {unknown}; choose from {list(GROUPS)}")

    @property
    def local_zone(self) -> ZoneInfo | None:
        """The zone, unless it is UTC (``None``: days are UTC days)."""
        zone = self.zone
        return zone if zone is not None and zone.key != "UTC" else None


def totals_rows(
    conn: Connection, asked: TotalsAsked, tables: ProjectionTables = LIVE
) -> list[TotalRow]:
    """``totals`` in the caller's read transaction."""
    group_by, local = asked.group_by, asked.local_zone
    if set(group_by) <= {"day"} and local is None:
        query = _daily_totals_query(tables, asked.start, asked.end, group_by, asked.currency)
    else:
        query = completed_totals_query(
            tables,
            conn.dialect.name,
            asked.start,
            asked.end,
            group_by,
            asked.currency,
            zone=local,
        )
    return [
        TotalRow(
            currency=row[0],
            group=dict(zip(group_by, row[1:-4], strict=True)),
            jobs=int(row[-4]),
            amount=int(row[-3]),
            reversed=int(row[-2]),
            refunded=int(row[-1]),
        )
        for row in conn.execute(query)
    ]


def _daily_totals_query(
    tables: ProjectionTables,
    start: date | None,
    end: date | None,
    group_by: Sequence[str],
    currency: str | None,
) -> sa.Select[Any]:
    table = tables.daily_totals
    columns = [table.c.currency, *(table.c[name] for name in group_by)]
    query = sa.select(
        *columns,
        sa.func.sum(table.c.jobs),
        sa.func.sum(table.c.amount),
        sa.func.sum(table.c.reversed),
        sa.func.sum(table.c.refunded),
    )
    if start is not None:
        query = query.where(table.c.day >= start)
    if end is not None:
        query = query.where(table.c.day <= end)
    if currency is not None:
        query = query.where(table.c.currency == currency)
    return query.group_by(*columns).order_by(*columns)


def completed_totals_query(
    tables: ProjectionTables,
    dialect: str,
    start: date | None,
    end: date | None,
    group_by: Sequence[str],
    currency: str | None,
    *,
    zone: ZoneInfo | None = None,
) -> sa.Select[Any]:
    """Jobs and amounts of the completed jobs per currency and ``group_by``, settled
    ``start..end`` (days in ``zone``, default UTC, inclusive); ``dialect`` says how to
    take a time's day."""
    jobs = tables.job_state
    day = (
        utc_day(jobs.c.completed_at, dialect)
        if zone is None
        else local_day(jobs.c.completed_at, dialect, zone)
    ).label("day")
    columns = [jobs.c.currency, *(day if name == "day" else jobs.c[name] for name in group_by)]
    # the partial index's own condition, as text: a bound status would not match it
    query = sa.select(
        *columns,
        sa.func.count(),
        sa.func.sum(jobs.c.paid),
        sa.func.sum(jobs.c.reversed),
        sa.func.sum(jobs.c.refunded),
    ).where(COMPLETED_ROWS)
    if start is not None:
        query = query.where(jobs.c.completed_at >= midnight(start, zone))
    if end is not None and end < date.max:  # no day after the last one: no upper bound
        query = query.where(jobs.c.completed_at < midnight(end + timedelta(days=1), zone))
    if currency is not None:
        query = query.where(jobs.c.currency == currency)
    return query.group_by(*columns).order_by(*columns)
