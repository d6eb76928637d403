"""One follower writes the live projections: a PostgreSQL session advisory lock,
or on SQLite an exclusive lock on a file beside the database.

Every ``serve`` worker process runs a follower, and an operator may run
``ledger project --follow`` beside them; reads never write
(``projections.reads``). Only the follower that holds the lock folds: the
others poll for it and take over when the leader's session ends (a stopped or
killed process, a lost connection). The key is the projections' checkpoint
table's OID under a base of its own, so ledgers in two schemas of one database
each have their leader, and it never meets the append lock's keys.

On SQLite the lead is an exclusive ``flock`` on ``<database>.projections.lock``,
held by the open file: the process that dies drops it. SQLite has one writer
for the whole file, and a follower in every ``serve --workers`` process
competed with the enqueues for it (bench/README: 32 clients fell to 8-24
requests/s before group commit hid it). An in-memory database has one process:
its follower leads.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.db import is_sqlite
from ledger.log_reader import translate_errors
from projections.schema import checkpoints

log = logging.getLogger("projections.leader")

#: high 32 bits of the advisory lock key ("PROJ"); the low 32 bits: the table's OID
LEADER_LOCK_BASE = 0x50524F4A << 32


class Leadership:
    """Whether this follower leads; holds one connection (autocommit) while it does."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._lock_path = _sqlite_lock_path(engine)
        self._lock_file: IO[bytes] | None = None

    @property
    def leads(self) -> bool:
        """Held at the last ``hold``."""
        if is_sqlite(self._engine):
            return self._lock_path is None or self._lock_file is not None
        return self._conn is not None

    def hold(self) -> bool:
        """Keep the lead, or take it when it is free; ``DatabaseUnavailable`` if unreachable."""
        if is_sqlite(self._engine):
            return self._hold_file()
        if self._conn is not None and not self._alive(self._conn):
            self._lose()
        if self._conn is None:
            self._take()
        return self._conn is not None

    def _hold_file(self) -> bool:
        if self._lock_path is None:
            return True
        if self._lock_file is None:
            handle = self._lock_path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._lock_file = handle
            log.info("this process now writes the live projections")
        return True

    def release(self) -> None:
        """Hand the lead over (the next follower to poll takes it)."""
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            handle.close()  # closing the file drops its lock
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(_UNLOCK)
        except sa.exc.DBAPIError:
            conn.invalidate()  # the session, and its lock, end with the connection
        finally:
            conn.close()

    close = release

    def _take(self) -> None:
        with translate_errors():
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                taken = bool(conn.execute(_TRY_LOCK).scalar_one())
            except BaseException:
                conn.close()
                raise
        if taken:
            self._conn = conn
            log.info("this process now writes the live projections")
        else:
            conn.close()

    @staticmethod
    def _alive(conn: Connection) -> bool:
        try:
            conn.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError:
            return False
        return True

    def _lose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
            conn.close()
        log.warning("lost the lead of the live projections (connection gone); trying again")


_KEY = f"{LEADER_LOCK_BASE} + '{checkpoints.name}'::regclass::oid::bigint"
_TRY_LOCK = sa.text(f"SELECT pg_try_advisory_lock({_KEY})")
_UNLOCK = sa.text(f"SELECT pg_advisory_unlock({_KEY})")


def _sqlite_lock_path(engine: Engine) -> Path | None:
    """``<database>.projections.lock`` for a SQLite file (``None``: not SQLite, or in memory)."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:":
        return None
    return Path(f"{database}.projections.lock")
