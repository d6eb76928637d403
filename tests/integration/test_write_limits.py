"""A stopped writer must not freeze every other writer (issue 20, L4), and a connection the
server killed is one line, not a traceback (L5).

A "stopped" writer here is a thread that took the append lock and then sits in its
transaction without a word, as a worker under SIGSTOP does: the database cannot
tell the two apart.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger.append_sql import APPEND_LOCK_BASE, WriteLimits
from ledger.db import create_engine
from ledger.decisions import attempt_event
from ledger.errors import DatabaseUnavailable
from ledger.lifecycle import Job, fold
from ledger.store import EventStore, StreamAppend
from tests.factories import request

#: waits in these tests end long before this, unless the bound under test is missing
GENEROUS = 120.0


def named(url: str, name: str) -> str:
    """``url`` whose sessions carry ``application_name`` (to find and end only ours)."""
    return make_url(url).update_query_dict({"application_name": name}).render_as_string(False)


@pytest.fixture
def app_name() -> str:
    return f"ledger-test-{uuid.uuid4().hex[:8]}"


#: the PostgreSQL tests: session limits and killed sessions are the server's
postgres_only = pytest.mark.parametrize("db_backend", ["postgres"])


def hold_the_append_lock(
    store: EventStore, holding: threading.Event, release: threading.Event, errors: list[str]
) -> None:
    """Take the append lock, then sit in the transaction until ``release`` (a stopped writer)."""
    try:
        with store._writing():
            holding.set()
            release.wait(GENEROUS)
    except DatabaseUnavailable as error:
        errors.append(error.message)
    finally:
        holding.set()


@postgres_only
def test_a_stopped_lock_holder_is_ended_and_the_others_write(db_url: str) -> None:
    stopped_engine = create_engine(db_url)
    stopped = EventStore(stopped_engine, limits=WriteLimits(idle_ms=300))
    wait = int(GENEROUS * 1000)
    writer = EventStore(create_engine(db_url), limits=WriteLimits(lock_ms=wait, statement_ms=wait))
    holding, release = threading.Event(), threading.Event()
    errors: list[str] = []
    holder = threading.Thread(target=hold_the_append_lock, args=(stopped, holding, release, errors))
    holder.start()
    try:
        assert holding.wait(GENEROUS)
        writer.enqueue(request(), max_attempts=3)  # waits until the server ends the holder
        written_while_stopped = not release.is_set()
    finally:
        release.set()
        holder.join()
        stopped_engine.dispose()
        writer.engine.dispose()
    assert written_while_stopped
    # the stopped writer, running again, finds its transaction gone: nothing it held counts
    (message,) = errors
    assert "connection" in message or "terminat" in message


@postgres_only
def test_a_writer_waiting_past_the_lock_timeout_fails_clearly(db_url: str) -> None:
    stopped = EventStore(create_engine(db_url), limits=WriteLimits(idle_ms=0))
    writer = EventStore(create_engine(db_url), limits=WriteLimits(lock_ms=200))
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_the_append_lock, args=(stopped, holding, release, []))
    holder.start()
    try:
        assert holding.wait(GENEROUS)
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            writer.enqueue(request(), max_attempts=3)
    finally:
        release.set()
        holder.join()
    assert writer.enqueue(request(), max_attempts=3).created  # the lock is free: it writes
    stopped.engine.dispose()
    writer.engine.dispose()


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_sqlite_writers_wait_at_most_the_busy_timeout(db_url: str) -> None:
    """SQLite cannot end another process's transaction: the busy timeout bounds the wait."""
    stopped = EventStore(create_engine(db_url))
    writer = EventStore(create_engine(db_url, sqlite_busy_timeout=0.2))
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_the_append_lock, args=(stopped, holding, release, []))
    holder.start()
    try:
        assert holding.wait(GENEROUS)
        with pytest.raises(DatabaseUnavailable, match="locked"):
            writer.enqueue(request(), max_attempts=3)
    finally:
        release.set()
        holder.join()
    assert writer.enqueue(request(), max_attempts=3).created
    stopped.engine.dispose()
    writer.engine.dispose()


def end_sessions(admin: Engine, app_name: str) -> int:
    with admin.begin() as conn:
        query = sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = :name"
        )
        return int(conn.execute(query, {"name": app_name}).scalar_one())


@pytest.fixture
def admin(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@postgres_only
def test_a_killed_append_connection_is_one_error_and_no_traceback(
    db_url: str, app_name: str, admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store = EventStore(create_engine(named(db_url, app_name)))
    job_id = store.enqueue(request(), max_attempts=3).job_id  # and a pooled connection
    failed: list[str] = []

    def append_behind_the_lock() -> None:
        # a worker's claim: the version look-up runs in the pipeline with the lock
        event = attempt_event(store_job(store, job_id), "w", datetime.now(UTC))
        try:
            store.append_many([StreamAppend(job_id, 1, [event])])
        except DatabaseUnavailable as error:
            failed.append(error.message)

    caplog.set_level(logging.DEBUG)
    with admin.connect() as holder, holder.begin():
        # the append waits inside its pipeline for the lock this connection holds
        holder.execute(
            sa.text("SELECT pg_advisory_xact_lock(:base + 'events'::regclass::oid::bigint)"),
            {"base": APPEND_LOCK_BASE},
        )
        appender = threading.Thread(target=append_behind_the_lock)
        appender.start()
        wait_for_lock_wait(admin, app_name)
        assert end_sessions(admin, app_name) == 1
        appender.join(GENEROUS)
    assert len(failed) == 1
    noisy = [
        r for r in caplog.records if r.exc_info or r.name.startswith(("psycopg", "sqlalchemy"))
    ]
    assert noisy == [], [(r.name, r.getMessage()) for r in noisy]
    # the pool dropped the dead connection: the next append just works
    assert store.enqueue(request(idempotency_key="after"), max_attempts=3).created
    store.engine.dispose()


def store_job(store: EventStore, job_id: str) -> Job:
    job = fold(store.read_stream(job_id))
    assert job is not None
    return job


def wait_for_lock_wait(admin: Engine, app_name: str) -> None:
    """Until our session waits on the advisory lock (polls the server, no clock involved)."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = :name AND wait_event_type = 'Lock'"
    )
    for _ in range(100_000):
        with admin.connect() as conn:
            if conn.execute(query, {"name": app_name}).scalar_one():
                return
    pytest.fail("the append never waited for the lock")
