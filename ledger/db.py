"""Engines for the two backends: SQLite (WAL, one writer) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

#: execution option that makes a SQLite transaction a plain (deferred) reader
READ_ONLY = "ledger_read_only"


#: SQLite function ``ledger_local_day(stored UTC time text, IANA zone)`` -> ``YYYY-MM-DD``
LOCAL_DAY_FUNCTION = "ledger_local_day"


def _local_day(stored: str | None, zone: str) -> str | None:
    """The day a stored SQLite time (UTC text) falls on in ``zone`` (None if unreadable)."""
    if stored is None:
        return None
    try:
        moment = datetime.fromisoformat(stored).replace(tzinfo=UTC)
        return moment.astimezone(ZoneInfo(zone)).date().isoformat()
    except (ValueError, KeyError):
        return None


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def can_fork(engine: Engine) -> bool:
    """Whether a forked process can open the same database (and ``fork`` exists here).

    A forked child must first drop the pooled connections it inherited without
    closing them (``engine.dispose(close=False)``, as SQLAlchemy advises for
    ``os.fork``); the engine then opens its own.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if is_sqlite(engine):
        database = engine.url.database or ""
        return database not in ("", ":memory:") and "mode=memory" not in str(engine.url)
    return True


def create_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    sqlite_busy_timeout: float = 60.0,
    **kwargs: Any,
) -> Engine:
    """An engine with the ledger's connection set-up.

    SQLite: WAL journal, a busy timeout (how long a writer waits for the write
    lock before it fails with "database is locked"), and write transactions opened with
    ``BEGIN IMMEDIATE`` so that the appender holds the single write lock from its
    first read of the log head to its commit (positions then follow commit order).
    Read transactions (``execution_options(ledger_read_only=True)``) stay deferred.
    """
    url = normalise_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(url, **kwargs)
    engine = sa.create_engine(url, connect_args={"timeout": sqlite_busy_timeout}, **kwargs)
    busy_ms = max(int(sqlite_busy_timeout * 1000), 1)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # SQLite has no time zone database: the business day of a stored UTC time
        dbapi_connection.create_function(LOCAL_DAY_FUNCTION, 2, _local_day, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
