"""The append path's statements (``ledger.append_sql``), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.db import create_engine
from ledger.errors import ConcurrencyError, LedgerError, SchemaNotReady
from ledger.events import EventType, NewEvent
from ledger.store import EventStore, StreamAppend
from tests.audit_support import assert_chain
from tests.backends import postgres_schema
from tests.factories import request

ATTEMPT = NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "worker-1")


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def test_a_batch_shares_one_time_and_seals_every_event(store: EventStore) -> None:
    jobs = [store.enqueue(request(idempotency_key=f"k{n}"), max_attempts=3).job_id for n in (1, 2)]
    later = NewEvent(EventType.FAILED, {"attempt": 1}, "w", due_in=timedelta(seconds=5))
    written = store.append_many(
        [StreamAppend(jobs[0], 1, [ATTEMPT, later]), StreamAppend(jobs[1], 1, [ATTEMPT])]
    ).events
    assert [(e.job_id, e.version) for e in written] == [(jobs[0], 2), (jobs[0], 3), (jobs[1], 2)]
    assert len({e.occurred_at for e in written}) == 1
    assert written[1].data["due_at"] is not None
    assert list(store.read_all(after=2)) == written  # what was returned is what is stored
    assert_chain(store)


def test_times_are_stored_as_queries_bind_them(engine: Engine) -> None:
    """``until_time`` at an event's own time includes it (SQLite compares stored text)."""
    start = datetime(2026, 11, 26, 12, 0, 0, 250_000, tzinfo=UTC)
    times = iter([start, start + timedelta(seconds=1)])
    store = EventStore(engine, clock=lambda: next(times))
    batch = store.enqueue_many([request(idempotency_key=k) for k in "ab"], max_attempts=3)
    store.enqueue(request(idempotency_key="c"), max_attempts=3)
    assert batch[0].event is not None and batch[0].event.occurred_at == start
    assert [e.idempotency_key for e in store.read_all(until_time=start)] == ["a", "b"]
    later = start + timedelta(seconds=1)
    assert [e.idempotency_key for e in store.read_all(until_time=later)] == ["a", "b", "c"]
    assert [e.occurred_at for e in store.read_all()] == [start, start, later]


def test_a_large_batch_is_written_whole(store: EventStore) -> None:
    """More rows than one SQLite statement takes (chunks) still form one gap-free append."""
    records = [request(idempotency_key=f"bulk-{n}") for n in range(1_200)]
    results = store.enqueue_many(records, max_attempts=3)
    assert all(r.created for r in results)
    events = list(store.read_all())
    assert [e.position for e in events] == list(range(1, 1_201))
    assert [e.idempotency_key for e in events] == [f"bulk-{n}" for n in range(1_200)]
    assert_chain(store)


def test_look_ups_stay_right_across_many_batches(store: EventStore) -> None:
    """psycopg prepares a statement after five runs; answers must not change after that."""
    first: dict[str, str] = {}
    for batch in range(8):
        keys = [f"b{batch}-{n}" for n in range(5)] + [f"b{max(batch - 1, 0)}-0"]
        results = store.enqueue_many([request(idempotency_key=k) for k in keys], max_attempts=3)
        for key, result in zip(keys, results, strict=True):
            assert first.setdefault(key, result.job_id) == result.job_id
        job_id = first[f"b{batch}-1"]
        store.append(job_id, 1, [ATTEMPT])
        with pytest.raises(ConcurrencyError):
            store.append(job_id, 1, [ATTEMPT])
    assert store.versions([first["b7-1"], first["b7-2"], "no-such-job"]) == {
        first["b7-1"]: 2,
        first["b7-2"]: 1,
    }
    assert_chain(store)


def test_a_refused_insert_is_a_ledger_error_and_writes_nothing(
    store: EventStore, engine: Engine
) -> None:
    job_id = store.enqueue(request(), max_attempts=3).job_id
    head = store.head()
    # past the version check (the unique index is the last line of defence)
    with pytest.raises(LedgerError, match="refused"), store._writing() as (conn, at):
        store._insert(conn, at, [StreamAppend(job_id, 0, [ATTEMPT])])
    assert count(engine) == 1
    assert store.head() == head
    store.append(job_id, 1, [ATTEMPT])
    assert_chain(store)


# -- PostgreSQL: the append lock is per events table --------------------------------


@pytest.fixture
def two_schemas() -> Iterator[tuple[EventStore, EventStore]]:
    with postgres_schema() as first_url, postgres_schema() as second_url:
        engines = [create_engine(url) for url in (first_url, second_url)]
        for url in (first_url, second_url):
            migrate.upgrade(url)
        try:
            yield EventStore(engines[0]), EventStore(engines[1])
        finally:
            for engine in engines:
                engine.dispose()


def _hold_append(store: EventStore, entered: threading.Event, release: threading.Event) -> None:
    with store._writing() as (conn, head):
        store._insert(conn, head, [StreamAppend(str(uuid.uuid4()), 0, [ATTEMPT])])
        entered.set()
        release.wait(10)


def test_ledgers_in_two_schemas_do_not_wait_for_each_other(
    two_schemas: tuple[EventStore, EventStore],
) -> None:
    first, second = two_schemas
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_append, args=(first, entered, release))
    holder.start()
    try:
        assert entered.wait(10)
        done = threading.Event()
        other = threading.Thread(
            target=lambda: (second.enqueue(request(), max_attempts=3), done.set())
        )
        other.start()
        # the other schema's append commits while the first transaction is still open
        assert done.wait(10)
        other.join(10)
        # while an append in the same schema (another engine) still waits for the lock
        same = EventStore(create_engine(first.engine.url.render_as_string(hide_password=False)))
        waiting = threading.Thread(target=lambda: same.enqueue(request(), max_attempts=3))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive()
    finally:
        release.set()
        holder.join(10)
    waiting.join(10)
    same.engine.dispose()
    assert [e.position for e in first.read_all()] == [1, 2]
    assert [e.position for e in second.read_all()] == [1]


def test_missing_table_is_a_clear_error_on_postgres() -> None:
    with postgres_schema() as url:
        engine = create_engine(url)
        try:
            with pytest.raises(SchemaNotReady, match="ledger init"):
                EventStore(engine).enqueue(request(), max_attempts=3)
        finally:
            engine.dispose()
