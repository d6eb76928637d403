"""Bulk writers per backend: many projection rows in few round trips.

Rows are tuples in the table's column order. ``insert`` is for rows whose keys
are new; ``upsert`` overwrites the non-key columns on a key clash, or adds to
them (``increment=True``: the ``jobs``/``amount`` sums).

* SQLite: one ``executemany`` of the prepared statement (sqlite3 loops in C).
  Times are bound in the text form SQLAlchemy stores (so reading them back
  through the models gives the same values); the log's own times already are
  in it and pass through unparsed.
* PostgreSQL: ``COPY`` for inserts. An upsert of more than a few rows is
  COPYed into a session-local temporary table (created on first use, emptied
  at commit: no schema of ours, which only migrations change) and merged with
  one ``INSERT … SELECT … ON CONFLICT``; psycopg's ``executemany`` would cost
  about ten times more per row. Rows keep their times as the fold has them:
  text from the log in UTC (or a ``datetime``), sent as text in a transaction
  whose time zone is set to UTC, so the server parses them. Parsing them here
  took a third of this process's CPU in a rebuild; a forked fold sends the
  rows on as cheap strings.

Statement texts are compiled by SQLAlchemy once per table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from ledger.events import Moment, as_time, to_utc

Row = Sequence[Any]

#: upserts up to this many rows go through executemany on PostgreSQL (no staging)
SMALL_UPSERT = 200

# the dialects statements are compiled for: rows are bound by position
_SQLITE_DIALECT: Dialect = sqlite.dialect(paramstyle="qmark")
_PG_DIALECT: Dialect = postgresql.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
_quote = _PG_DIALECT.identifier_preparer.quote

# SQLAlchemy's own conversions, so rows read back through the models compare equal
_SQLITE_DATETIME = sa.DateTime().dialect_impl(_SQLITE_DIALECT).bind_processor(_SQLITE_DIALECT)
_SQLITE_DATE = sa.Date().dialect_impl(_SQLITE_DIALECT).bind_processor(_SQLITE_DIALECT)


def sqlite_time(value: Moment | None) -> str | None:
    """A time in SQLite's stored text form (what SQLAlchemy's DateTime writes there)."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return value  # the stored form already (times read raw from the log)
        value = as_time(value)
    assert _SQLITE_DATETIME is not None and value is not None
    text: str = _SQLITE_DATETIME(to_utc(value))
    return text


@functools.lru_cache(maxsize=1024)
def day_text(value: date) -> str:
    """A day as ISO text (what SQLAlchemy's Date writes in SQLite; PostgreSQL parses it)."""
    assert _SQLITE_DATE is not None
    text: str = _SQLITE_DATE(value)
    return text


@dataclass(frozen=True)
class Writer:
    """How one backend takes times, days and bulk rows."""

    time: Callable[[Moment | None], Any]
    day: Callable[[date], Any]
    insert: Callable[[Connection, sa.Table, Sequence[Row]], None]
    upsert_rows: Callable[[Connection, sa.Table, Sequence[Row], bool], None]

    def upsert(
        self, conn: Connection, table: sa.Table, rows: Sequence[Row], *, increment: bool = False
    ) -> None:
        if rows:
            self.upsert_rows(conn, table, rows, increment)


def writer(dialect: Dialect) -> Writer:
    """The writer for a connection's dialect."""
    if dialect.name == "postgresql":
        return _POSTGRES
    return _SQLITE


# -- statements --------------------------------------------------------------------


def _keys(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def _set_clause(table: sa.Table, excluded: Any, increment: bool) -> dict[str, Any]:
    keys = _keys(table)
    return {
        column.name: (table.c[column.name] + excluded[column.name])
        if increment
        else excluded[column.name]
        for column in table.columns
        if column.name not in keys
    }


def _positional(statement: Any, dialect: Dialect, table: sa.Table) -> str:
    compiled = statement.compile(dialect=dialect)
    # rows are bound by position: the statement must take the columns in table order
    if tuple(compiled.positiontup) != tuple(column.name for column in table.columns):
        raise RuntimeError(f"unexpected parameter order for {table.name}")
    return str(compiled)


@functools.lru_cache(maxsize=64)
def _sqlite_sql(table: sa.Table, upsert: bool, increment: bool) -> str:
    statement = sqlite.insert(table)
    if upsert:
        statement = statement.on_conflict_do_update(
            index_elements=_keys(table), set_=_set_clause(table, statement.excluded, increment)
        )
    return _positional(statement, _SQLITE_DIALECT, table)


def _sqlite_insert(conn: Connection, table: sa.Table, rows: Sequence[Row]) -> None:
    if rows:
        conn.exec_driver_sql(_sqlite_sql(table, False, False), rows)


def _sqlite_upsert(conn: Connection, table: sa.Table, rows: Sequence[Row], increment: bool) -> None:
    conn.exec_driver_sql(_sqlite_sql(table, True, increment), rows)


_SQLITE = Writer(sqlite_time, day_text, _sqlite_insert, _sqlite_upsert)


# -- PostgreSQL --------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _pg_copy(table_name: str, table: sa.Table) -> str:
    names = ", ".join(_quote(column.name) for column in table.columns)
    return f"COPY {_quote(table_name)} ({names}) FROM STDIN"


def _pg_copy_rows(conn: Connection, table_name: str, table: sa.Table, rows: Sequence[Row]) -> None:
    statement = _pg_copy(table_name, table)
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi_error as error:
        # the driver's own cursor: wrap its error as SQLAlchemy would, so that the
        # store's edge (``translate_errors``) sees it like any other
        raise sa.exc.DBAPIError.instance(statement, None, error, dbapi_error) from error
    finally:
        cursor.close()


def _utc_times(conn: Connection) -> None:
    """Read time text without an offset as UTC, for the rest of the caller's transaction."""
    conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")


def _pg_insert(conn: Connection, table: sa.Table, rows: Sequence[Row]) -> None:
    if rows:
        _utc_times(conn)
        _pg_copy_rows(conn, table.name, table, rows)


def _staging_name(table: sa.Table) -> str:
    return f"incoming_{table.name}"


@functools.lru_cache(maxsize=64)
def _pg_sql(table: sa.Table, increment: bool, staged: bool) -> str:
    statement = postgresql.insert(table)
    if staged:
        names = [column.name for column in table.columns]
        staging = sa.table(_staging_name(table), *(sa.column(name) for name in names))
        statement = statement.from_select(names, sa.select(*staging.c))
    statement = statement.on_conflict_do_update(
        index_elements=_keys(table), set_=_set_clause(table, statement.excluded, increment)
    )
    if staged:
        return str(statement.compile(dialect=_PG_DIALECT))
    return _positional(statement, _PG_DIALECT, table)


def _pg_upsert(conn: Connection, table: sa.Table, rows: Sequence[Row], increment: bool) -> None:
    _utc_times(conn)
    if len(rows) <= SMALL_UPSERT:
        conn.exec_driver_sql(_pg_sql(table, increment, False), list(rows))
        return
    staging = _quote(_staging_name(table))
    # session-local and emptied at commit; TRUNCATE covers a second use in one transaction
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
        f"(LIKE {_quote(table.name)}) ON COMMIT DELETE ROWS"
    )
    conn.exec_driver_sql(f"TRUNCATE {staging}")
    _pg_copy_rows(conn, _staging_name(table), table, rows)
    conn.exec_driver_sql(_pg_sql(table, increment, True))


def _as_it_is(value: Any) -> Any:
    """A time for PostgreSQL rows: the server parses text times (``_utc_times``)."""
    return value


_POSTGRES = Writer(_as_it_is, day_text, _pg_insert, _pg_upsert)
