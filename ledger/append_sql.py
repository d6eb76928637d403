"""The statements of an append, per backend: lock and head, idempotency look-up, bulk insert.

``ledger.store`` decides what to append; this module only moves it in and out
of the events table on the write path, as directly as each driver allows:

* PostgreSQL (psycopg 3): ``BEGIN``, the append lock, the head read and the
  look-up the append needs (idempotency keys or versions) go to the server in
  one pipelined round trip (each statement still takes its own snapshot, so it
  reads after the lock is granted). None of them is a prepared statement:
  psycopg prepares a query after five runs, and a generic plan made while the
  log was small (this project's servers may run without autovacuum, so with no
  statistics) stays a sequential scan as the log grows. Rows go in with
  ``COPY``, about a fifth of the client CPU of a multi-row ``INSERT``; a single
  row with one ``INSERT`` (``COPY`` takes two round trips).
* SQLite: SQLAlchemy Core for the reads, one multi-row ``INSERT`` per chunk of
  rows (its text built once per chunk size).

Rows are tuples in ``COLUMNS`` order, values as the driver takes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect

from ledger.driver_errors import Fault, constraint_of, fault_of
from ledger.events import GENESIS_HASH, to_utc
from ledger.schema import events as events_table

#: high 32 bits of the PostgreSQL advisory lock key that serialises appends
#: ("LEDG"); the low 32 bits are the events table's OID, so two ledgers in two
#: schemas of one database (two tables) never wait for each other
APPEND_LOCK_BASE = 0x4C454447 << 32

#: the events table's columns in the order of a row tuple
COLUMNS = (
    "position",
    "job_id",
    "version",
    "type",
    "data",
    "occurred_at",
    "actor",
    "idempotency_key",
    "user_id",
    "place_id",
    "mission_id",
    "prev_hash",
    "hash",
)
#: the idempotency key's column, and the unique index that gives each key one job
KEY_COLUMN = events_table.c.idempotency_key.name
KEY_INDEX = next(
    str(index.name)
    for index in events_table.indexes
    if index.unique and [column.name for column in index.columns] == [KEY_COLUMN]
)
#: SQLite's limit is 32,766 bound values per statement; 500 rows use 6,500
_SQLITE_CHUNK = 500

T = TypeVar("T")
Row = tuple[Any, ...]
#: position, hash, occurred_at of the last event (None when the log is empty)
Head = tuple[int, str, datetime | None]
#: idempotency key -> (job id, request fingerprint)
KnownKeys = dict[str, tuple[str, str]]


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """How long one append may wait for the append lock, run one statement, or sit idle in
    its transaction (milliseconds; 0 means no limit). PostgreSQL only: ``SET LOCAL`` on
    every append transaction, so reads (exports, audits) are not bounded by them.

    Every writer waits behind the one holding the append lock; a holder that stops
    (SIGSTOP, a long GC pause, a frozen VM) would freeze them all. The server ends
    an idle holder's session after ``idle_ms`` and a stalled statement (a ``COPY``
    whose client stopped sending) after ``statement_ms``; the stopped writer finds
    its transaction gone, and the version check fences its late outcome. A writer
    that waited ``lock_ms`` fails with ``DatabaseUnavailable`` and retries.
    """

    lock_ms: int = 10_000
    statement_ms: int = 15_000
    idle_ms: int = 5_000


@dataclass(frozen=True, slots=True)
class Opening:
    """What an append reads under the lock before it writes."""

    head: Head
    #: the database's clock (PostgreSQL), None where the store keeps time itself
    clock: datetime | None
    known_keys: KnownKeys
    versions: dict[str, int]


class AppendSQL(Protocol):
    """What an append needs from the database, inside the caller's transaction."""

    def open(
        self, conn: Connection, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> Opening:
        """Take the append lock, then read the head, the clock and the look-ups asked for."""

    def known_keys(self, conn: Connection, keys: Sequence[str]) -> KnownKeys:
        """The keys among ``keys`` already in the log."""

    def versions(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, int]:
        """Each job's current version (jobs with no events are left out)."""

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert sealed rows; a violated constraint raises ``sqlalchemy.exc.IntegrityError``."""

    def time_value(self, moment: datetime) -> Any:
        """``occurred_at`` as the driver takes it for this backend."""

    def is_key_taken(self, error: sa_exc.IntegrityError, *, keyed: bool) -> bool:
        """Whether ``error`` is the unique index on the idempotency key refusing a row.

        ``keyed``: the insert carried idempotency keys (``enqueued`` events).
        """


def for_dialect(dialect: Dialect, limits: WriteLimits | None = None) -> AppendSQL:
    """The append statements for the engine's backend."""
    if dialect.name == "postgresql":
        return PostgresAppendSQL(dialect.loaded_dbapi, limits or WriteLimits())
    return SqliteAppendSQL(dialect)


def _head_of(row: Sequence[Any] | None) -> Head:
    if row is None or row[0] is None:
        return 0, GENESIS_HASH, None
    return int(row[0]), str(row[1]), to_utc(row[2])


def _fingerprints(rows: Iterator[Sequence[Any]]) -> KnownKeys:
    return {key: (job_id, orjson.loads(data)["fingerprint"]) for key, job_id, data in rows}


# -- SQLite -----------------------------------------------------------------------


class SqliteAppendSQL:
    """SQLite: the write lock is ``BEGIN IMMEDIATE`` (see ``ledger.db``), taken on opening."""

    _HEAD = (
        sa.select(events_table.c.position, events_table.c.hash, events_table.c.occurred_at)
        .order_by(events_table.c.position.desc())
        .limit(1)
    )
    # one expanding parameter: compiled once and cached, whatever the number of values
    _KEYS = sa.select(
        events_table.c.idempotency_key, events_table.c.job_id, events_table.c.data
    ).where(events_table.c.idempotency_key.in_(sa.bindparam("values", expanding=True)))
    _VERSIONS = (
        sa.select(events_table.c.job_id, sa.func.max(events_table.c.version))
        .where(events_table.c.job_id.in_(sa.bindparam("values", expanding=True)))
        .group_by(events_table.c.job_id)
    )

    def __init__(self, dialect: Dialect) -> None:
        # the dialect's own DATETIME conversion (text without an offset), so stored
        # times compare with the ones SQLAlchemy binds in queries (``until_time``)
        column_type = events_table.c.occurred_at.type.dialect_impl(dialect)
        self._bind_time: Callable[[Any], Any] | None = column_type.bind_processor(dialect)

    def open(
        self, conn: Connection, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> Opening:
        head = _head_of(conn.execute(self._HEAD).first())
        known = self.known_keys(conn, keys) if keys else {}
        return Opening(head, None, known, self.versions(conn, job_ids) if job_ids else {})

    def known_keys(self, conn: Connection, keys: Sequence[str]) -> KnownKeys:
        known: KnownKeys = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQLITE_CHUNK):
            chunk = unique[start : start + _SQLITE_CHUNK]
            known.update(_fingerprints(iter(conn.execute(self._KEYS, {"values": chunk}))))
        return known

    def versions(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(job_ids), _SQLITE_CHUNK):
            chunk = job_ids[start : start + _SQLITE_CHUNK]
            found.update(_versions(conn.execute(self._VERSIONS, {"values": chunk})))
        return found

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        for start in range(0, len(rows), _SQLITE_CHUNK):
            chunk = rows[start : start + _SQLITE_CHUNK]
            params = tuple(value for row in chunk for value in row)
            conn.exec_driver_sql(_sqlite_insert(len(chunk)), params)

    def time_value(self, moment: datetime) -> Any:
        return self._bind_time(moment) if self._bind_time is not None else moment

    def is_key_taken(self, error: sa_exc.IntegrityError, *, keyed: bool) -> bool:
        # SQLite's result codes name no index; a keyed insert (new jobs, new ids, the
        # versions and positions chosen under the write lock) can only meet the key's
        return keyed and fault_of(error) is Fault.UNIQUE


@lru_cache(maxsize=64)
def _sqlite_insert(rows: int) -> str:
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES " + ", ".join([one] * rows)


# -- PostgreSQL -------------------------------------------------------------------

# this transaction's bounds (``WriteLimits``), set before it waits for the lock
_PG_LIMITS = (
    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true),"
    " set_config('idle_in_transaction_session_timeout', %s, true)"
)
_PG_LOCK = "SELECT pg_advisory_xact_lock(%s + 'events'::regclass::oid::bigint)"
# one row even on an empty log: the clock, and the head (NULLs when there is none)
_PG_HEAD = (
    "SELECT h.position, h.hash, h.occurred_at, clock_timestamp() FROM (SELECT 1) AS one"
    " LEFT JOIN (SELECT position, hash, occurred_at FROM events"
    " ORDER BY position DESC LIMIT 1) AS h ON true"
)
_PG_KEYS = "SELECT idempotency_key, job_id, data FROM events WHERE idempotency_key = ANY(%s)"
# a correlated max per id: one backward probe of the (job_id, version) index per job
# (an IN (…) GROUP BY on a never-analysed log was planned as a full scan)
_PG_VERSIONS = (
    "SELECT ids.job_id, (SELECT max(version) FROM events WHERE job_id = ids.job_id)"
    " FROM unnest(%s::text[]) AS ids(job_id)"
)
# binary: psycopg writes each value's wire form in C (about half the client time of
# text, which is escaped and parsed back); every string column takes text's form
PG_COPY = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
PG_COPY_TYPES = tuple(
    {"position": "int8", "version": "int4", "occurred_at": "timestamptz"}.get(column, "text")
    for column in COLUMNS
)
_PG_INSERT_ONE = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)


class PostgresAppendSQL:
    """PostgreSQL through psycopg 3 directly (the connection SQLAlchemy holds).

    ``psycopg`` is the module SQLAlchemy's dialect loaded (the ``postgres`` extra
    is optional, so nothing here imports it).
    """

    def __init__(self, psycopg: Any, limits: WriteLimits | None = None) -> None:
        # libpq 14+ pipelines; an older system libpq gets the same statements one by one
        self._pipelined = psycopg.Pipeline.is_supported()
        limits = limits or WriteLimits()
        self._limits = (str(limits.lock_ms), str(limits.statement_ms), str(limits.idle_ms))

    def open(
        self, conn: Connection, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> Opening:
        driver = _psycopg(conn)
        # One round trip: BEGIN, the bounds, the lock, then look-ups that each take
        # their own snapshot after the lock is granted (READ COMMITTED), so they see
        # every append committed before ours. None is prepared: a generic plan made
        # while the log was tiny could stay a scan. The head is read in a second
        # round trip, outside the pipeline: psycopg ends a pipeline with a flush
        # request after its sync, which leaves the server's idle-in-transaction timer
        # unarmed until the next complete statement, and a writer stopped while it
        # seals its rows would then hold the lock unbounded (``WriteLimits``).
        pipeline = driver.pipeline() if self._pipelined else nullcontext()
        with _driver_errors(_PG_HEAD, conn):
            with _settled(pipeline):
                driver.execute(_PG_LIMITS, self._limits, prepare=False)
                driver.execute(_PG_LOCK, (APPEND_LOCK_BASE,), prepare=False)
                found = _query(driver, _PG_KEYS, list(dict.fromkeys(keys))) if keys else None
                current = _query(driver, _PG_VERSIONS, list(job_ids)) if job_ids else None
                known = _fingerprints(iter(found)) if found is not None else {}
                versions = _versions(current) if current is not None else {}
            row = driver.execute(_PG_HEAD, prepare=False).fetchone()
        return Opening(_head_of(row), to_utc(row[3]), known, versions)

    def known_keys(self, conn: Connection, keys: Sequence[str]) -> KnownKeys:
        with _driver_errors(_PG_KEYS, conn):
            return _fingerprints(iter(_query(_psycopg(conn), _PG_KEYS, list(dict.fromkeys(keys)))))

    def versions(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, int]:
        with _driver_errors(_PG_VERSIONS, conn):
            return _versions(_query(_psycopg(conn), _PG_VERSIONS, list(job_ids)))

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        driver = _psycopg(conn)
        if len(rows) == 1:
            # one row: a (prepared) INSERT is one round trip, COPY takes two
            with _driver_errors(_PG_INSERT_ONE, conn):
                driver.execute(_PG_INSERT_ONE, rows[0])
            return
        with _driver_errors(PG_COPY, conn), _settled(driver.cursor().copy(PG_COPY)) as copy:
            copy.set_types(PG_COPY_TYPES)
            for row in rows:
                copy.write_row(row)

    def time_value(self, moment: datetime) -> Any:
        return moment

    def is_key_taken(self, error: sa_exc.IntegrityError, *, keyed: bool) -> bool:
        return fault_of(error) is Fault.UNIQUE and constraint_of(error) == KEY_INDEX


def _query(driver: Any, statement: str, values: list[str]) -> Any:
    """Run a look-up over one array parameter, unprepared; returns its cursor."""
    return driver.execute(statement, (values,), prepare=False)


def _versions(rows: Any) -> dict[str, int]:
    return {job_id: int(version) for job_id, version in rows if version}


def _psycopg(conn: Connection) -> Any:
    """The psycopg connection under SQLAlchemy's, inside the same transaction."""
    return conn.connection.driver_connection


@contextmanager
def _driver_errors(statement: str, conn: Connection) -> Iterator[None]:
    """psycopg's errors as SQLAlchemy's, so the store translates one error tree.

    A connection the error left broken (the server ended the session: a restart,
    ``pg_terminate_backend``, an idle-in-transaction timeout) is invalidated, so
    the pool drops it instead of resetting it, which would fail again and log a
    traceback; the caller's one line about the error is the whole story.
    """
    psycopg = conn.dialect.loaded_dbapi  # the driver module SQLAlchemy loaded
    try:
        yield
    except psycopg.Error as exc:
        driver = _psycopg(conn)
        lost = bool(driver.broken or driver.closed)
        # a pipeline that could not be left (an error in it, then its end failed too)
        # leaves the connection unusable for plain statements: drop it as well
        stuck = not lost and driver.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF
        if lost or stuck:
            conn.invalidate()
        raise sa_exc.DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=lost or stuck
        ) from exc


@contextmanager
def _settled(block: AbstractContextManager[T]) -> Iterator[T]:
    """``block`` (a psycopg pipeline or copy), ended before an error in it is raised.

    psycopg logs a warning when ending the block fails while an error from inside
    it propagates (a lost connection fails both); ended here first, the block's
    own ending error is raised instead, once, and nothing is logged.
    """
    failure: BaseException | None = None
    with block as inner:
        try:
            yield inner
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise failure
