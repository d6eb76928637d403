"""Writing the read models to SQL: load a batch's jobs, write its changes, move the checkpoint.

Every function takes the open connection of the runner's one transaction per
batch, so rows and checkpoint commit together or not at all. Writes are batched
per table (``projections.writers``: executemany on SQLite, COPY on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.db import READ_ONLY, is_sqlite
from ledger.errors import SchemaNotReady
from ledger.log_reader import translate_errors
from projections.fold import JobState
from projections.rows import ChangeRows, state_from_row
from projections.schema import ProjectionTables, checkpoints
from projections.writers import writer as _writer

#: ids per ``IN (...)`` list (far below SQLite's and PostgreSQL's bind-parameter limits)
CHUNK = 1000


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (one consistent snapshot); driver errors become ledger errors.

    On PostgreSQL the transaction is REPEATABLE READ: a checkpoint and the rows it
    stands for are read in one snapshot even while the follower commits (SQLite's
    read transaction is one snapshot already).
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with (
        translate_errors(),
        engine.connect() as conn,
        conn.execution_options(**options).begin(),
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


#: SQLite settings of the connection a long projection run writes on: a page cache
#: that holds the tables' index pages (KiB; the default is 2 MB, and each random key
#: then reads its page back from the OS), and a WAL checkpoint every 64 MB rather
#: than every 4 MB (pages rewritten between two checkpoints are copied back once)
_SQLITE_BULK_PRAGMAS = {"cache_size": -32 * 1024, "wal_autocheckpoint": 16 * 1024}


@contextmanager
def bulk_writing(conn: Connection) -> Iterator[None]:
    """Tune ``conn`` (not in a transaction) for a run of large write transactions, then restore it.

    SQLite only: a 1M-event rebuild's writes took 30 % less time with these
    settings. PostgreSQL's equivalents are the server's.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    before = {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in _SQLITE_BULK_PRAGMAS}
    for name, value in _SQLITE_BULK_PRAGMAS.items():
        raw.execute(f"PRAGMA {name}={value}")
    try:
        yield
    finally:
        if not conn.invalidated:
            for name, value in before.items():
                raw.execute(f"PRAGMA {name}={value}")


# -- one batch ---------------------------------------------------------------------


def load_states(
    conn: Connection, tables: ProjectionTables, job_ids: Sequence[str]
) -> list[JobState]:
    """The stored state of ``job_ids`` (jobs not in the table are left out)."""
    table = tables.job_state
    found: list[JobState] = []
    for chunk in chunks(job_ids):
        rows = conn.execute(sa.select(table).where(table.c.job_id.in_(chunk)))
        found.extend(state_from_row(row._mapping) for row in rows)
    return found


def write_rows(conn: Connection, tables: ProjectionTables, rows: ChangeRows) -> None:
    """Write one drain of the fold to every table of the set (the caller's transaction)."""
    writer = _writer(conn.dialect)
    writer.insert(conn, tables.job_state, rows.new_jobs)
    writer.upsert(conn, tables.job_state, rows.changed_jobs)
    for chunk in chunks(rows.dlq_removed):
        conn.execute(sa.delete(tables.dlq).where(tables.dlq.c.job_id.in_(chunk)))
    writer.upsert(conn, tables.dlq, rows.dlq)
    if rows.stats:
        writer.upsert(conn, tables.queue_stats, rows.stats, increment=True)
        # a bucket that emptied leaves no row, whatever the batch boundaries were
        table = tables.queue_stats
        conn.execute(sa.delete(table).where(table.c.jobs == 0, table.c.amount == 0))
    writer.upsert(conn, tables.daily_totals, rows.daily, increment=True)


# -- whole sets --------------------------------------------------------------------


def clear(conn: Connection, tables: ProjectionTables, *, truncate: bool = True) -> int:
    """Empty every table of the set and put its checkpoint back to 0; the rows deleted.

    On PostgreSQL ``TRUNCATE`` (instant, leaves no dead rows, but readers of these
    tables wait for the commit) unless ``truncate=False`` or the role may not
    (the app role of ``ledger roles`` has read and write, no ``TRUNCATE``);
    SQLite empties a table as fast either way.

    The checkpoint row is locked first, as every runner's batch does: taken the
    other way round, a runner holding the row and a ``TRUNCATE`` holding the
    tables would each wait for the other.
    """
    lock_checkpoint(conn, tables)
    deleted = 0
    if truncate and conn.dialect.name == "postgresql" and _may_truncate(conn, tables):
        _on_every_table(conn, "TRUNCATE", tables)
    else:
        for table in tables.all:
            deleted += conn.execute(sa.delete(table)).rowcount
    set_checkpoint(conn, tables, 0)
    return deleted


def _may_truncate(conn: Connection, tables: ProjectionTables) -> bool:
    names = [table.name for table in tables.all]
    allowed = conn.exec_driver_sql(
        "SELECT bool_and(has_table_privilege(name, 'TRUNCATE')) FROM unnest(%s::text[]) AS name",
        (names,),
    ).scalar()
    return bool(allowed)


def tidy_after_rebuild(engine: Engine, tables: ProjectionTables, dead_rows: int) -> None:
    """Do autovacuum's work on a PostgreSQL table set when the server will not (it is off).

    A rebuild in place deletes every row it rewrites: without ``VACUUM`` the dead
    rows pile up rebuild after rebuild, and without ``ANALYZE`` the tables have no
    statistics. A rebuild that deleted nothing only needs the statistics.
    """
    with (
        translate_errors(),
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
    ):
        if conn.exec_driver_sql("SHOW autovacuum").scalar() != "off":
            return
        _on_every_table(conn, "VACUUM ANALYZE" if dead_rows else "ANALYZE", tables)


def can_rename(engine: Engine, *sets: ProjectionTables) -> bool:
    """Whether ``trade_names`` may run: SQLite, or PostgreSQL when this role owns every table."""
    if is_sqlite(engine):
        return True
    names = [table.name for tables in sets for table in tables.all]
    with reading(engine) as conn:
        owned = conn.exec_driver_sql(
            "SELECT bool_and(pg_has_role(relowner, 'USAGE')) FROM pg_class "
            "WHERE oid = ANY(%s::regclass[])",
            (names,),
        ).scalar()
    return bool(owned)


def analyze(engine: Engine, tables: ProjectionTables) -> None:
    """Gather the planner's statistics for a PostgreSQL table set (SQLite keeps none).

    Only for what the queries filter or group by (``_planned``): statistics on
    every column of ``job_state`` cost as much again, and a swap waits for them.
    """
    if is_sqlite(engine):
        return
    quote = engine.dialect.identifier_preparer.quote
    targets = [
        quote(table.name) + (f" ({', '.join(map(quote, columns))})" if columns else "")
        for table, columns in _planned(tables)
    ]
    with translate_errors(), engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE " + ", ".join(targets))


def _planned(tables: ProjectionTables) -> list[tuple[sa.Table, tuple[str, ...]]]:
    """The tables whose statistics plans use, and their columns that matter (``()``: all)."""
    return [
        (
            tables.job_state,
            ("status", "due_at", "completed_at", "currency", "user_id", "place_id", "mission_id"),
        ),
        (tables.dlq, ()),
        (tables.queue_stats, ()),
        (tables.daily_totals, ()),
    ]


def _on_every_table(conn: Connection, command: str, tables: ProjectionTables) -> None:
    """One ``command`` (``TRUNCATE``, ``ANALYZE``…) over every table of the set."""
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"{command} " + ", ".join(quote(table.name) for table in tables.all))


def trade_names(conn: Connection, source: ProjectionTables, target: ProjectionTables) -> int:
    """Make ``source``'s rows ``target``'s by swapping the two table sets' names; empty ``source``.

    Tables, their keys and indexes trade names, ``target``'s checkpoint takes
    ``source``'s position, and ``source`` (now the old ``target`` rows) is
    emptied back to 0, all in the caller's transaction: readers wait for it a
    moment, then read the new rows under the old names; a live runner finds its
    checkpoint moved and resumes from there. Names stay the migrations' (one
    naming convention for both sets), so the schema is the same before and
    after. Returns the position ``target`` now stands at.
    """
    lock_checkpoint(conn, target)
    position = lock_checkpoint(conn, source)
    if conn.dialect.name == "sqlite":
        _trade_sqlite(conn, source, target)
    else:
        _trade_postgres(conn, source, target)
    set_checkpoint(conn, target, position)  # and ``clear`` put ``source``'s back to 0
    return position


def _trade_postgres(conn: Connection, source: ProjectionTables, target: ProjectionTables) -> None:
    for src, dst in zip(source.all, target.all, strict=True):
        pairs = [(src.name, dst.name)]
        pairs += [(ix.replace(dst.name, src.name, 1), ix) for ix in _index_names(conn, dst)]
        if sorted(a for a, _ in pairs[1:]) != _index_names(conn, src):
            raise SchemaNotReady(
                f"{src.name} and {dst.name} do not have the same indexes: run `ledger init`"
            )
        _trade(conn, "TABLE", *pairs[0])
        for a, b in pairs[1:]:
            _trade(conn, "INDEX", a, b)
    clear(conn, source)


def _trade_sqlite(conn: Connection, source: ProjectionTables, target: ProjectionTables) -> None:
    """SQLite renames a table's key index with it, but no other index, and cannot rename one.

    Those few indexes are dropped and built again under the migrations' names,
    after ``source`` is emptied: one sort over the traded-in rows each.
    """
    tables = (*source.all, *target.all)
    indexes = [index for table in tables for index in table.indexes]
    for index in indexes:
        conn.execute(sa.schema.DropIndex(index))
    for src, dst in zip(source.all, target.all, strict=True):
        _trade(conn, "TABLE", src.name, dst.name)
    clear(conn, source)
    for index in indexes:
        conn.execute(sa.schema.CreateIndex(index))


def _index_names(conn: Connection, table: sa.Table) -> list[str]:
    """Names of a PostgreSQL ``table``'s indexes (its primary key's among them), sorted."""
    rows = conn.exec_driver_sql(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
        (table.name,),
    )
    return sorted(str(name).rsplit(".", 1)[-1].strip('"') for (name,) in rows)


def _trade(conn: Connection, kind: str, a: str, b: str) -> None:
    """Swap the names of two tables or indexes (a constraint's index renames the constraint)."""
    quote = conn.dialect.identifier_preparer.quote
    spare = f"{a}_traded"
    for old, new in ((a, spare), (b, a), (spare, b)):
        conn.exec_driver_sql(f"ALTER {kind} {quote(old)} RENAME TO {quote(new)}")


def copy_over(conn: Connection, source: ProjectionTables, target: ProjectionTables) -> int:
    """Replace ``target``'s rows and checkpoint by ``source``'s.

    The swap of a PostgreSQL role that may not rename the tables (SQLite always
    trades names, ``trade_names``).
    """
    lock_checkpoint(conn, target)
    position = lock_checkpoint(conn, source)
    for src, dst in zip(source.all, target.all, strict=True):
        conn.execute(sa.delete(dst))
        names = [column.name for column in dst.columns]
        conn.execute(dst.insert().from_select(names, sa.select(*(src.c[n] for n in names))))
    set_checkpoint(conn, target, position)
    return position
