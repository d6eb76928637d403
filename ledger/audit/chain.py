"""Raw rows of the events table and their seals: what ``verify`` reads and recomputes.

Rows are read as stored (``data`` is the stored text, never re-serialised), so a
recomputed hash covers exactly the bytes in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import READ_ONLY
from ledger.events import event_hash
from ledger.schema import events as events_table
from ledger.store import translate_errors


class RawRow(NamedTuple):
    """A row as stored (a plain tuple: the walk reads ~20 fields per row, fast)."""

    position: int
    job_id: str
    version: int
    type: str
    data: str
    occurred_at: datetime
    actor: str
    idempotency_key: str | None
    user_id: str | None
    place_id: str | None
    mission_id: str | None
    prev_hash: str
    hash: str


_COLUMNS = (
    events_table.c.position,
    events_table.c.job_id,
    events_table.c.version,
    events_table.c.type,
    events_table.c.data,
    events_table.c.occurred_at,
    events_table.c.actor,
    events_table.c.idempotency_key,
    events_table.c.user_id,
    events_table.c.place_id,
    events_table.c.mission_id,
    events_table.c.prev_hash,
    events_table.c.hash,
)


def seal(row: RawRow, *, position: int | None = None) -> str:
    """The hash ``row`` would carry if it had been sealed at ``position`` (default: its own)."""
    return event_hash(
        prev_hash=row.prev_hash,
        position=row.position if position is None else position,
        job_id=row.job_id,
        version=row.version,
        event_type=row.type,
        data_json=row.data,
        occurred_at=row.occurred_at,
        actor=row.actor,
        idempotency_key=row.idempotency_key,
    )


class RowReader:
    """Read raw rows: pages in position order, and the point look-ups ``verify`` needs.

    Every call runs in its own short read transaction (no long-lived snapshot that
    would hold back SQLite's WAL checkpoints or PostgreSQL's vacuum).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _one(self, query: sa.Select[Any]) -> RawRow | None:
        row = self._scalar_row(query)
        return None if row is None else RawRow._make(row)

    def _scalar_row(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        with (
            translate_errors(),
            self.engine.connect() as conn,
            conn.execution_options(**{READ_ONLY: True}).begin(),
        ):
            return conn.execute(query).first()

    def pages(self, after: int, until: int | None, page_size: int = 2000) -> Iterator[list[RawRow]]:
        """Pages of rows with ``after < position <= until``, in position order."""
        while True:
            query = (
                sa.select(*_COLUMNS)
                .where(events_table.c.position > after)
                .order_by(events_table.c.position)
                .limit(page_size)
            )
            if until is not None:
                query = query.where(events_table.c.position <= until)
            with (
                translate_errors(),
                self.engine.connect() as conn,
                conn.execution_options(**{READ_ONLY: True}).begin(),
            ):
                page = [RawRow._make(row) for row in conn.execute(query)]
            if page:
                yield page
            if len(page) < page_size:
                return
            after = page[-1].position

    def head_position(self) -> int:
        """The highest position in the log (0 when empty)."""
        row = self._scalar_row(sa.select(sa.func.coalesce(sa.func.max(events_table.c.position), 0)))
        return int(row[0]) if row is not None else 0

    def last_before(self, position: int) -> RawRow | None:
        """The row just before ``position`` (the trusted predecessor of a partial walk)."""
        return self._one(
            sa.select(*_COLUMNS)
            .where(events_table.c.position < position)
            .order_by(events_table.c.position.desc())
            .limit(1)
        )

    def at(self, position: int) -> RawRow | None:
        return self._one(sa.select(*_COLUMNS).where(events_table.c.position == position))

    def after(self, position: int) -> RawRow | None:
        return self._one(
            sa.select(*_COLUMNS)
            .where(events_table.c.position > position)
            .order_by(events_table.c.position)
            .limit(1)
        )

    def with_hash(self, digest: str) -> RawRow | None:
        """The row whose hash is ``digest`` (a full scan: used only to explain a failure)."""
        return self._one(sa.select(*_COLUMNS).where(events_table.c.hash == digest).limit(1))

    def latest_of_job(self, job_id: str, before: int) -> RawRow | None:
        """The job's last event before ``position`` (by the ``(job_id, version)`` index)."""
        return self._one(
            sa.select(*_COLUMNS)
            .where(events_table.c.job_id == job_id, events_table.c.position < before)
            .order_by(events_table.c.position.desc())
            .limit(1)
        )
