"""Driver errors are sorted by class and code, and their text never reaches a message."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import redis
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_exc

from ledger.driver_errors import Fault, constraint_of, fault_of, ledger_error
from ledger.errors import (
    DatabaseBusy,
    DatabaseRefused,
    DatabaseUnavailable,
    LedgerError,
    QueueRefused,
    QueueUnavailable,
    SchemaNotReady,
)
from ledger.queue.hotqueue import queue_error

SECRET = "db.internal.example:5432 password=hunter2 SELECT * FROM events"


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """``error`` as SQLAlchemy hands it over."""
    return sa_exc.DBAPIError.instance("SELECT 1", None, error, type(error))


def sqlite_error(script: str) -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(script)
    except sqlite3.Error as error:
        return error
    finally:
        conn.close()
    raise AssertionError("the script did not fail")


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (psycopg.errors.UniqueViolation(SECRET), Fault.UNIQUE),
        (psycopg.errors.CheckViolation(SECRET), Fault.CONSTRAINT),
        (psycopg.errors.UndefinedTable(SECRET), Fault.NO_SCHEMA),
        (psycopg.errors.InvalidSchemaName(SECRET), Fault.NO_SCHEMA),
        (psycopg.errors.AdminShutdown(SECRET), Fault.UNAVAILABLE),
        (psycopg.errors.ConnectionFailure(SECRET), Fault.UNAVAILABLE),
        (psycopg.errors.TooManyConnections(SECRET), Fault.UNAVAILABLE),
        (psycopg.errors.QueryCanceled(SECRET), Fault.BUSY),
        (psycopg.errors.LockNotAvailable(SECRET), Fault.BUSY),
        (psycopg.errors.DeadlockDetected(SECRET), Fault.BUSY),
        (psycopg.errors.SerializationFailure(SECRET), Fault.BUSY),
        (psycopg.errors.ReadOnlySqlTransaction(SECRET), Fault.READ_ONLY),
        (psycopg.errors.InsufficientPrivilege(SECRET), Fault.DENIED),
        (psycopg.errors.DivisionByZero(SECRET), Fault.OTHER),
        # no SQLSTATE: the client never got an answer from a server
        (psycopg.OperationalError(SECRET), Fault.UNAVAILABLE),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_postgres_errors_by_sqlstate(error: Exception, fault: Fault) -> None:
    assert fault_of(wrapped(error)) is fault


def test_sqlite_errors_by_result_code() -> None:
    unique = sqlite_error("CREATE TABLE t (k UNIQUE); INSERT INTO t VALUES (1), (1);")
    check = sqlite_error("CREATE TABLE t (k CHECK (k > 1)); INSERT INTO t VALUES (1);")
    missing = sqlite_error("SELECT * FROM no_such_table;")
    assert fault_of(wrapped(unique)) is Fault.UNIQUE
    assert fault_of(wrapped(check)) is Fault.CONSTRAINT
    assert fault_of(wrapped(missing)) is Fault.NO_SCHEMA


def test_the_violated_constraint_comes_from_the_diagnostics_not_the_text() -> None:
    error = psycopg.errors.UniqueViolation("duplicate key ix_events_idempotency_key")
    assert constraint_of(wrapped(error)) is None  # psycopg fills diag from the server only


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (psycopg.errors.UndefinedTable(SECRET), SchemaNotReady),
        (psycopg.errors.AdminShutdown(SECRET), DatabaseUnavailable),
        (psycopg.OperationalError(SECRET), DatabaseUnavailable),
        (psycopg.errors.LockNotAvailable(SECRET), DatabaseBusy),
        (psycopg.errors.ReadOnlySqlTransaction(SECRET), DatabaseRefused),
        (psycopg.errors.InsufficientPrivilege(SECRET), DatabaseRefused),
        (psycopg.errors.UniqueViolation(SECRET), DatabaseRefused),
        (psycopg.errors.DivisionByZero(SECRET), DatabaseRefused),
    ],
    ids=lambda value: type(value).__name__,
)
def test_database_errors_become_ledger_errors_without_driver_text(
    error: Exception, kind: type[LedgerError]
) -> None:
    translated = ledger_error(wrapped(error))
    assert type(translated) is kind
    assert "hunter2" not in translated.message and "db.internal" not in translated.message
    assert "SELECT" not in translated.message


def test_a_busy_database_is_an_unavailable_one_to_retry_loops() -> None:
    assert isinstance(
        ledger_error(wrapped(psycopg.errors.QueryCanceled(SECRET))), DatabaseUnavailable
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis.ConnectionError(SECRET), QueueUnavailable),
        (redis.TimeoutError(SECRET), QueueUnavailable),
        (redis_errors.BusyLoadingError(SECRET), QueueUnavailable),
        (redis_errors.AuthenticationError(SECRET), QueueUnavailable),
        (redis_errors.ReadOnlyError(SECRET), QueueRefused),
        (redis_errors.OutOfMemoryError(SECRET), QueueRefused),
        (redis.ResponseError(SECRET), QueueRefused),
        (redis.DataError(SECRET), QueueUnavailable),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_redis_error_becomes_a_queue_error_without_its_text(
    error: redis.RedisError, kind: type[QueueUnavailable]
) -> None:
    translated = queue_error(error)
    assert type(translated) is kind
    assert isinstance(translated, QueueUnavailable)  # callers that keep going catch this one
    assert "hunter2" not in translated.message and "db.internal" not in translated.message
