"""Database driver errors by class and code, never by their text.

psycopg's errors carry the SQLSTATE (``sqlstate``) and the name of the violated
constraint (``diag.constraint_name``); sqlite3's carry the extended result code
(``sqlite_errorcode``). ``fault_of`` sorts an error into a ``Fault`` by those
alone, as eventsourcing's PostgreSQL recorder does; ``ledger_error`` turns a
fault into the ledger error a caller sees. The driver's text (SQL, parameters,
host names) goes to the log only, never into a ledger error's message.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import assert_never

from sqlalchemy import exc as sa_exc

from ledger.errors import (
    DatabaseBusy,
    DatabaseRefused,
    DatabaseUnavailable,
    LedgerError,
    SchemaNotReady,
)

log = logging.getLogger("ledger.db")


class Fault(Enum):
    """What went wrong, as far as the driver's class and code say."""

    #: a unique index refused a row (which one: ``constraint_of``, on PostgreSQL)
    UNIQUE = "unique"
    #: another integrity rule refused a row (CHECK, NOT NULL, a trigger)
    CONSTRAINT = "constraint"
    #: a table, column or schema the statement needs is missing: not migrated (yet)
    NO_SCHEMA = "no schema"
    #: the connection failed or was lost, the server is shutting down or out of resources
    UNAVAILABLE = "unavailable"
    #: a lock or statement timeout, a deadlock, a serialisation failure: try again
    BUSY = "busy"
    #: a write on a read-only transaction, database or replica
    READ_ONLY = "read only"
    #: the role lacks the privilege
    DENIED = "denied"
    #: anything else the database refused
    OTHER = "other"


#: SQLSTATE codes (PostgreSQL appendix A), then their two-character classes
_PG_CODES: dict[str, Fault] = {
    "23505": Fault.UNIQUE,
    "42P01": Fault.NO_SCHEMA,  # undefined_table
    "42703": Fault.NO_SCHEMA,  # undefined_column: an older schema
    "3F000": Fault.NO_SCHEMA,  # invalid_schema_name
    "57P01": Fault.UNAVAILABLE,  # admin_shutdown
    "57P02": Fault.UNAVAILABLE,  # crash_shutdown
    "57P03": Fault.UNAVAILABLE,  # cannot_connect_now
    "57014": Fault.BUSY,  # query_canceled (statement_timeout)
    "55P03": Fault.BUSY,  # lock_not_available (lock_timeout)
    "25006": Fault.READ_ONLY,  # read_only_sql_transaction
    "42501": Fault.DENIED,  # insufficient_privilege
}
_PG_CLASSES: dict[str, Fault] = {
    "08": Fault.UNAVAILABLE,  # connection exception
    "53": Fault.UNAVAILABLE,  # insufficient resources
    "58": Fault.UNAVAILABLE,  # system error
    "40": Fault.BUSY,  # transaction rollback: serialization failure, deadlock
    "23": Fault.CONSTRAINT,  # integrity constraint violation
    "25": Fault.BUSY,  # invalid transaction state (idle-in-transaction timeout)
}

#: sqlite3 extended result codes, then primary codes (https://sqlite.org/rescode.html)
_SQLITE_EXTENDED: dict[int, Fault] = {
    2067: Fault.UNIQUE,  # SQLITE_CONSTRAINT_UNIQUE
    1555: Fault.UNIQUE,  # SQLITE_CONSTRAINT_PRIMARYKEY
}
_SQLITE_PRIMARY: dict[int, Fault] = {
    # SQLITE_ERROR: sqlite3 has no finer code for "no such table/column"; the
    # ledger's own statements are tested on every schema, so it means one is missing
    1: Fault.NO_SCHEMA,
    3: Fault.DENIED,  # SQLITE_PERM
    5: Fault.BUSY,  # SQLITE_BUSY
    6: Fault.BUSY,  # SQLITE_LOCKED
    8: Fault.READ_ONLY,  # SQLITE_READONLY
    10: Fault.UNAVAILABLE,  # SQLITE_IOERR
    11: Fault.UNAVAILABLE,  # SQLITE_CORRUPT
    13: Fault.UNAVAILABLE,  # SQLITE_FULL
    14: Fault.UNAVAILABLE,  # SQLITE_CANTOPEN
    19: Fault.CONSTRAINT,  # SQLITE_CONSTRAINT
    26: Fault.UNAVAILABLE,  # SQLITE_NOTADB
}


def _driver_error(error: BaseException) -> BaseException:
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error (psycopg's ``sqlstate``), if it has one."""
    state = getattr(_driver_error(error), "sqlstate", None)
    return state if isinstance(state, str) else None


def constraint_of(error: BaseException) -> str | None:
    """The name of the constraint a PostgreSQL error violated (``diag.constraint_name``)."""
    name = getattr(getattr(_driver_error(error), "diag", None), "constraint_name", None)
    return name if isinstance(name, str) else None


def fault_of(error: BaseException) -> Fault:
    """Sort a driver error (or SQLAlchemy's wrapper of one) by its class and code."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return Fault.UNAVAILABLE  # the session is gone, whatever ended it
    state = sqlstate_of(error)
    if state is not None:
        return _PG_CODES.get(state) or _PG_CLASSES.get(state[:2], Fault.OTHER)
    code = getattr(_driver_error(error), "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_EXTENDED.get(code) or _SQLITE_PRIMARY.get(code & 0xFF, Fault.OTHER)
    # no code: the driver never reached a server (refused, DNS, lost before a reply)
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return Fault.UNAVAILABLE
    return Fault.OTHER


def _code_of(error: BaseException) -> str:
    state = sqlstate_of(error)
    if state is not None:
        return f"SQLSTATE {state}"
    code = getattr(_driver_error(error), "sqlite_errorcode", None)
    name = getattr(_driver_error(error), "sqlite_errorname", None)
    if isinstance(code, int):
        return f"{name or 'SQLite error'} ({code})"
    return type(_driver_error(error)).__name__


#: what made the database busy, by SQLSTATE or sqlite3 primary result code
_BUSY_REASONS: dict[str | int, str] = {
    "55P03": "the append waited past the lock timeout",
    "57014": "a statement ran past the statement timeout",
    "25P03": "a transaction sat idle past the idle-in-transaction timeout",
    "40P01": "a deadlock",
    "40001": "a serialization failure",
    5: "the database is locked by another writer past the busy timeout",
    6: "a table is locked",
}


def _busy_reason(error: BaseException) -> str:
    code = getattr(_driver_error(error), "sqlite_errorcode", None)
    key: str | int | None = sqlstate_of(error)
    if key is None and isinstance(code, int):
        key = code & 0xFF
    return _BUSY_REASONS.get(key or 0, "a lock, a timeout or a deadlock")


def ledger_error(error: BaseException) -> LedgerError:
    """The ledger error for a driver error; its text goes to the log, not the message."""
    fault = fault_of(error)
    code = _code_of(error)
    # INFO: the caller gets (and reports) the ledger error; a CLI without logging set up
    # must not print the driver's text to its user (Python's last-resort handler would)
    log.info("database error %s (%s): %s", code, fault.value, _driver_error(error))
    match fault:
        case Fault.NO_SCHEMA:
            return SchemaNotReady()
        case Fault.UNAVAILABLE:
            return DatabaseUnavailable(
                f"the database cannot be reached or the connection was lost ({code}); "
                "nothing of the interrupted transaction was kept; check LEDGER_DATABASE_URL "
                "and that the server is up"
            )
        case Fault.BUSY:
            return DatabaseBusy(
                f"the database is busy: {_busy_reason(error)} ({code}); nothing was written, "
                "try again"
            )
        case Fault.READ_ONLY:
            return DatabaseRefused(
                f"the database is read-only for this connection ({code}); writes need the "
                "primary and the application role"
            )
        case Fault.DENIED:
            return DatabaseRefused(
                f"the database role lacks a privilege this needs ({code}); check the role "
                "in LEDGER_DATABASE_URL"
            )
        case Fault.UNIQUE | Fault.CONSTRAINT | Fault.OTHER:
            return DatabaseRefused(
                f"the database refused the operation ({code}); nothing was written, "
                "the server's log says why"
            )
        case _:
            assert_never(fault)
