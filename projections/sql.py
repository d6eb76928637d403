"""Writing the read models to SQL: load a batch's jobs, write its changes, move the checkpoint.

Every function takes the open connection of the runner's one transaction per
batch, so rows and checkpoint commit together or not at all. Writes are batched
(one executemany per table per batch, upserts on both backends).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine

from ledger.db import READ_ONLY
from ledger.store import translate_errors
from projections.fold import (
    BatchChanges,
    JobRecord,
    dlq_row,
    job_row,
    record_from_row,
    settled_row,
    stats_row,
)
from projections.schema import ProjectionTables, checkpoints

#: ids per ``IN (...)`` list (far below SQLite's and PostgreSQL's bind-parameter limits)
CHUNK = 1000


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (one consistent snapshot); driver errors become ledger errors."""
    with (
        translate_errors(),
        engine.connect() as conn,
        conn.execution_options(**{READ_ONLY: True}).begin(),
    ):
        yield conn


# -- checkpoint --------------------------------------------------------------------


def lock_checkpoint(conn: Connection, tables: ProjectionTables) -> int:
    """The set's checkpoint, locked until commit (``FOR UPDATE``; SQLite's writer lock)."""
    query = (
        sa.select(checkpoints.c.position).where(checkpoints.c.name == tables.name).with_for_update()
    )
    return int(conn.execute(query).scalar_one())


def set_checkpoint(conn: Connection, tables: ProjectionTables, position: int) -> None:
    conn.execute(
        sa.update(checkpoints)
        .where(checkpoints.c.name == tables.name)
        .values(position=position, updated_at=datetime.now(UTC))
    )


def read_checkpoint(conn: Connection, tables: ProjectionTables) -> int:
    query = sa.select(checkpoints.c.position).where(checkpoints.c.name == tables.name)
    return int(conn.execute(query).scalar_one())


# -- one batch ---------------------------------------------------------------------


def load_jobs(
    conn: Connection, tables: ProjectionTables, job_ids: Sequence[str]
) -> dict[str, JobRecord]:
    """The stored state of ``job_ids`` (jobs not in the table are left out)."""
    table = tables.job_state
    found: dict[str, JobRecord] = {}
    for chunk in chunks(job_ids):
        for row in conn.execute(sa.select(table).where(table.c.job_id.in_(chunk))):
            found[row.job_id] = record_from_row(row._mapping)
    return found


def write_changes(conn: Connection, tables: ProjectionTables, changes: BatchChanges) -> None:
    """Write one batch's changes to every table of the set."""
    upsert(conn, tables.job_state, [job_row(record) for record in changes.jobs.values()])
    for chunk in chunks(changes.dlq_removed):
        conn.execute(sa.delete(tables.dlq).where(tables.dlq.c.job_id.in_(chunk)))
    upsert(conn, tables.dlq, [dlq_row(record) for record in changes.dlq])
    if changes.idempotency:
        conn.execute(sa.insert(tables.idempotency), changes.idempotency)
    if changes.stats:
        stats = [stats_row(key, totals) for key, totals in changes.stats.items()]
        upsert(conn, tables.queue_stats, stats, increment=("jobs", "amount"))
        # a bucket that emptied leaves no row, whatever the batch boundaries were
        table = tables.queue_stats
        conn.execute(sa.delete(table).where(table.c.jobs == 0, table.c.amount == 0))
    settled = [settled_row(key, totals) for key, totals in changes.settled.items()]
    upsert(conn, tables.settled_totals, settled, increment=("jobs", "amount"))


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    increment: Sequence[str] = (),
) -> None:
    """Insert ``rows`` or, on a primary-key clash, overwrite (or add to ``increment`` columns).

    Each key must appear once in ``rows`` (the fold merges them beforehand). The
    rows go to the driver's ``executemany`` as they are, after the column types'
    own bind processing: per-row statement handling in SQLAlchemy would cost
    more than the fold itself on a rebuild.
    """
    if not rows:
        return
    statement, processors = _prepared_upsert(conn.dialect, table, tuple(increment))
    for name, process in processors:
        for row in rows:
            row[name] = process(row[name])
    conn.exec_driver_sql(statement, rows)


# SQL text compiled once per dialect and table (no connections are held here)
@functools.lru_cache(maxsize=64)
def _prepared_upsert(
    dialect: Dialect, table: sa.Table, increment: tuple[str, ...]
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """The upsert's SQL text with named parameters, and the columns that need converting."""
    insert = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)
    keys = [column.name for column in table.primary_key.columns]
    values: dict[str, Any] = {
        column.name: (
            table.c[column.name] + insert.excluded[column.name]
            if column.name in increment
            else insert.excluded[column.name]
        )
        for column in table.columns
        if column.name not in keys
    }
    statement = insert.on_conflict_do_update(index_elements=keys, set_=values)
    # sqlite3 takes named parameters from dicts as readily as psycopg does
    target = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
    processors = tuple(
        (column.name, process)
        for column in table.columns
        if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    )
    return str(statement.compile(dialect=target)), processors


# -- whole sets --------------------------------------------------------------------


def clear(conn: Connection, tables: ProjectionTables) -> None:
    """Empty every table of the set and put its checkpoint back to 0."""
    for table in tables.all:
        conn.execute(sa.delete(table))
    set_checkpoint(conn, tables, 0)


def copy_over(conn: Connection, source: ProjectionTables, target: ProjectionTables) -> int:
    """Replace ``target``'s rows and checkpoint by ``source``'s (the swap of a rebuild)."""
    lock_checkpoint(conn, target)
    position = lock_checkpoint(conn, source)
    for src, dst in zip(source.all, target.all, strict=True):
        conn.execute(sa.delete(dst))
        names = [column.name for column in dst.columns]
        conn.execute(dst.insert().from_select(names, sa.select(*(src.c[n] for n in names))))
    set_checkpoint(conn, target, position)
    return position
