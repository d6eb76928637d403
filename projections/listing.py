"""The console's job list: ``job_state`` rows by filter and search, a page at a time.

Reads the projection table at its checkpoint (the page says which position it
stands at); the job page itself reads the log. Filters are exact matches on the
indexed identifiers, a status, a currency and an amount range; ``search`` finds
a job by its id, idempotency key, user, place, mission or provider reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from projections.schema import LIVE, ProjectionTables
from projections.sql import read_checkpoint, reading

#: most rows a page shows
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What to list (``None``: any)."""

    status: str | None = None
    user_id: str | None = None
    place_id: str | None = None
    mission_id: str | None = None
    currency: str | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    search: str | None = None
    #: the job's last error contains this text
    reason_contains: str | None = None
    #: the job's last change (its failure, for a dead-lettered job) in [from, to)
    changed_from: datetime | None = None
    changed_to: datetime | None = None

    def as_data(self) -> dict[str, Any]:
        """The filter as plain JSON values (a bulk action's record and token cover it)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
            if value is not None
        }


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest first, and how many match in all."""

    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
    position: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total


_COLUMNS = (
    "job_id",
    "status",
    "user_id",
    "place_id",
    "mission_id",
    "amount",
    "currency",
    "attempts",
    "last_error",
    "idempotency_key",
    "reference",
    "created_at",
    "updated_at",
)


def _conditions(table: sa.Table, wanted: JobFilter) -> list[sa.ColumnElement[bool]]:
    c = table.c
    found: list[sa.ColumnElement[bool]] = []
    exact = (
        (c.status, wanted.status),
        (c.user_id, wanted.user_id),
        (c.place_id, wanted.place_id),
        (c.mission_id, wanted.mission_id),
        (c.currency, wanted.currency),
    )
    found += [column == value for column, value in exact if value]
    if wanted.min_amount is not None:
        found.append(c.amount >= wanted.min_amount)
    if wanted.max_amount is not None:
        found.append(c.amount <= wanted.max_amount)
    if wanted.reason_contains:
        pattern = "%" + _escape_like(wanted.reason_contains) + "%"
        found.append(c.last_error.like(pattern, escape="\\"))
    if wanted.changed_from is not None:
        found.append(c.updated_at >= wanted.changed_from)
    if wanted.changed_to is not None:
        found.append(c.updated_at < wanted.changed_to)
    if wanted.search:
        text = wanted.search
        found.append(
            sa.or_(
                c.job_id == text,
                c.idempotency_key == text,
                c.user_id == text,
                c.place_id == text,
                c.mission_id == text,
                c.reference == text,
            )
        )
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job a bulk action would touch: its id and version as the projection has them."""

    job_id: str
    version: int
    amount: int
    currency: str


def bulk_candidates(
    engine: Engine, wanted: JobFilter, limit: int, tables: ProjectionTables = LIVE
) -> tuple[list[Candidate], int]:
    """Up to ``limit`` jobs ``wanted`` selects, oldest first, and the projection's position."""
    table = tables.job_state
    c = table.c
    query = (
        sa.select(c.job_id, c.version, c.amount, c.currency)
        .where(*_conditions(table, wanted))
        .order_by(c.position)
        .limit(limit)
    )
    with reading(engine) as conn:
        position = read_checkpoint(conn, tables)
        rows = [Candidate(str(j), int(v), int(a), str(cur)) for j, v, a, cur in conn.execute(query)]
    return rows, position


def list_jobs(
    engine: Engine,
    wanted: JobFilter,
    offset: int = 0,
    limit: int = 50,
    tables: ProjectionTables = LIVE,
) -> JobPage:
    """A page of ``wanted`` jobs, newest first (by their last event's position)."""
    limit = max(1, min(limit, MAX_PAGE))
    table = tables.job_state
    where = _conditions(table, wanted)
    query = (
        sa.select(*(table.c[name] for name in _COLUMNS))
        .where(*where)
        .order_by(table.c.position.desc())
        .offset(max(offset, 0))
        .limit(limit)
    )
    count = sa.select(sa.func.count()).select_from(table).where(*where)
    with reading(engine) as conn:
        position = read_checkpoint(conn, tables)
        rows = [dict(row._mapping) for row in conn.execute(query)]
        total = int(conn.execute(count).scalar_one())
    return JobPage(rows, total, max(offset, 0), limit, position)
