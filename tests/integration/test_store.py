"""The event store contract, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import create_engine
from ledger.errors import ConcurrencyError, IdempotencyConflict, SchemaNotReady
from ledger.events import EventType, NewEvent
from ledger.lifecycle import JobStatus, fold
from ledger.store import EventStore, StreamAppend
from tests.audit_support import assert_chain
from tests.factories import request

ATTEMPT = NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "worker-1")


def enqueue(store: EventStore, key: str = "key-1", **overrides: object) -> str:
    result = store.enqueue(request(idempotency_key=key, **overrides), max_attempts=3)
    assert result.created
    return result.job_id


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def test_append_and_read_round_trip(store: EventStore) -> None:
    job_id = enqueue(store, metadata={"qr": "토큰 ✓", "n": [1, 2.5, None]})
    store.append(job_id, 1, [ATTEMPT, NewEvent(EventType.COMPLETED, {"attempt": 1}, "worker-1")])
    events = store.read_stream(job_id)
    assert [e.type for e in events] == ["enqueued", "attempted", "completed"]
    assert [e.version for e in events] == [1, 2, 3]
    assert events[0].data["request"]["metadata"] == {"qr": "토큰 ✓", "n": [1, 2.5, None]}
    assert events[0].data["request"]["amount"] == 10_000
    assert events[0].idempotency_key == "key-1"
    assert events[1].actor == "worker-1"
    assert all(e.occurred_at.tzinfo is not None for e in events)
    job = fold(events)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert list(store.read_all()) == events


def test_new_jobs_get_time_ordered_ids(store: EventStore) -> None:
    ids = [store.enqueue(request(idempotency_key=f"k{n}"), max_attempts=1).job_id for n in range(5)]
    assert all(uuid.UUID(job_id).version == 7 for job_id in ids)
    assert ids == sorted(ids)


def test_positions_are_contiguous_and_time_never_goes_back(store: EventStore) -> None:
    for n in range(5):
        enqueue(store, key=f"k{n}")
    events = list(store.read_all())
    assert [e.position for e in events] == [1, 2, 3, 4, 5]
    times = [e.occurred_at for e in events]
    assert times == sorted(times)


def test_read_all_pages_and_bounds(store: EventStore) -> None:
    for n in range(7):
        enqueue(store, key=f"k{n}")
    assert [e.position for e in store.read_all(page_size=2)] == list(range(1, 8))
    assert [e.position for e in store.read_all(after=3, page_size=2)] == [4, 5, 6, 7]
    assert [e.position for e in store.read_all(until_position=4)] == [1, 2, 3, 4]
    cutoff = list(store.read_all())[2].occurred_at
    assert all(e.occurred_at <= cutoff for e in store.read_all(until_time=cutoff))


def test_hash_chain_is_written_from_the_first_event(store: EventStore) -> None:
    job_id = enqueue(store)
    store.append(job_id, 1, [ATTEMPT])
    enqueue(store, key="key-2")
    last = assert_chain(store)
    assert store.head().hash == last


def test_stale_version_is_a_concurrency_error(store: EventStore, engine: Engine) -> None:
    job_id = enqueue(store)
    store.append(job_id, 1, [ATTEMPT])
    before = count(engine)
    with pytest.raises(ConcurrencyError) as caught:
        store.append(job_id, 1, [ATTEMPT])
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert count(engine) == before


def test_two_writers_at_one_version_exactly_one_wins(store: EventStore, engine: Engine) -> None:
    job_id = enqueue(store)
    barrier = threading.Barrier(8)

    def complete(n: int) -> str:
        barrier.wait()
        try:
            store.append(job_id, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, f"w{n}")])
        except ConcurrencyError:
            return "lost"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(complete, range(8)))
    assert outcomes.count("won") == 1
    assert [e.type for e in store.read_stream(job_id)] == ["enqueued", "attempted"]


def test_append_many_is_all_or_nothing(store: EventStore, engine: Engine) -> None:
    a, b = enqueue(store, key="a"), enqueue(store, key="b")
    store.append(b, 1, [ATTEMPT])
    before = count(engine)
    with pytest.raises(ConcurrencyError):
        store.append_many([StreamAppend(a, 1, [ATTEMPT]), StreamAppend(b, 1, [ATTEMPT])])
    assert count(engine) == before


def test_append_many_can_skip_stale_streams(store: EventStore) -> None:
    a, b, c = (enqueue(store, key=k) for k in "abc")
    store.append(b, 1, [ATTEMPT])
    result = store.append_many([StreamAppend(j, 1, [ATTEMPT]) for j in (a, b, c)], skip_stale=True)
    assert {e.job_id for e in result.events} == {a, c}
    assert [r.job_id for r in result.rejected] == [b]
    assert store.versions([a, b, c]) == {a: 2, b: 2, c: 2}


def test_due_in_is_resolved_against_the_event_time(store: EventStore) -> None:
    result = store.enqueue(request(), max_attempts=3, delay=timedelta(seconds=90))
    (event,) = store.read_stream(result.job_id)
    job = fold([event])
    assert job is not None and job.due_at == event.occurred_at + timedelta(seconds=90)


# -- idempotency ------------------------------------------------------------------


def test_same_key_same_request_returns_the_job(store: EventStore, engine: Engine) -> None:
    first = store.enqueue(request(), max_attempts=3)
    again = store.enqueue(request(), max_attempts=3)
    assert (again.job_id, again.created) == (first.job_id, False)
    assert count(engine) == 1


def test_a_batch_with_known_keys_writes_only_the_new_ones(
    store: EventStore, engine: Engine
) -> None:
    # the first try inserts without a look-up and is refused by the key's unique
    # index; the retry looks the keys up, all under one append lock
    old = store.enqueue_many([request(idempotency_key=f"k{n}") for n in (1, 2)], max_attempts=3)
    mixed = store.enqueue_many(
        [request(idempotency_key=f"k{n}") for n in (0, 1, 2, 3)], max_attempts=3
    )
    assert [r.created for r in mixed] == [True, False, False, True]
    assert [r.job_id for r in mixed[1:3]] == [r.job_id for r in old]
    assert count(engine) == 4
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert_chain(store)


def test_the_key_look_up_runs_only_while_keys_come_back(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[list[str]] = []
    sql = store._sql
    opening = sql.open

    def spy(conn: sa.Connection, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()) -> Any:
        looked_up.append(list(keys))
        return opening(conn, keys=keys, job_ids=job_ids)

    monkeypatch.setattr(sql, "open", spy)
    store.enqueue_many([request(idempotency_key="a")], max_attempts=3)
    store.enqueue_many([request(idempotency_key=k) for k in "ab"], max_attempts=3)
    store.enqueue_many([request(idempotency_key=k) for k in "bc"], max_attempts=3)
    store.enqueue_many([request(idempotency_key="d")], max_attempts=3)
    store.enqueue_many([request(idempotency_key="e")], max_attempts=3)
    # a new key: no look-up; a known key: refused, then looked up; the look-up stays on
    # while it finds known keys, and turns off after a batch in which it found none
    assert looked_up == [[], [], ["a", "b"], ["b", "c"], ["d"], []]
    assert [e.idempotency_key for e in store.read_all()] == ["a", "b", "c", "d", "e"]


# every character an array literal treats specially, and words it would read as NULL
AWKWARD_KEYS = ['a"b', "c\\d", "e,f", "{g}", "NULL", "null", " h ", "é-키", "'", '\\"']


def test_awkward_keys_are_found_again(store: EventStore, engine: Engine) -> None:
    requests = [request(idempotency_key=key) for key in AWKWARD_KEYS]
    first = store.enqueue_many(requests, max_attempts=3)
    again = store.enqueue_many(requests, max_attempts=3)
    assert [r.job_id for r in again] == [r.job_id for r in first]
    assert not any(r.created for r in again)
    assert len({r.job_id for r in first}) == len(AWKWARD_KEYS) == count(engine)


@pytest.mark.parametrize(
    "change", [{"amount": 10_001}, {"user_id": "other"}, {"metadata": {"receipt_id": "r-2"}}]
)
def test_same_key_different_request_conflicts(
    store: EventStore, engine: Engine, change: dict[str, object]
) -> None:
    first = store.enqueue(request(), max_attempts=3)
    with pytest.raises(IdempotencyConflict) as caught:
        store.enqueue(request(**change), max_attempts=3)
    assert caught.value.job_id == first.job_id
    assert count(engine) == 1


def test_fifty_concurrent_enqueues_with_one_key_make_one_job(
    store: EventStore, engine: Engine
) -> None:
    barrier = threading.Barrier(50)

    def send(_: int) -> str:
        barrier.wait()
        return store.enqueue(request(), max_attempts=3).job_id

    with ThreadPoolExecutor(50) as pool:
        job_ids = set(pool.map(send, range(50)))
    assert len(job_ids) == 1
    assert count(engine) == 1


def test_unique_index_backs_the_key_even_without_the_store(
    engine: Engine, store: EventStore
) -> None:
    enqueue(store)
    (event,) = list(store.read_all())
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO events (position, job_id, version, type, data, occurred_at, actor,"
                " idempotency_key, prev_hash, hash) VALUES (2, 'other', 1, 'enqueued', '{}',"
                " :t, 'x', 'key-1', 'p', 'h')"
            ),
            {"t": event.occurred_at},
        )


# -- append-only at the database -------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'",
        "UPDATE events SET actor = 'mallory' WHERE position = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE position = 1",
    ],
)
def test_triggers_refuse_update_and_delete(
    store: EventStore, engine: Engine, statement: str
) -> None:
    enqueue(store)
    before = list(store.read_all())
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert list(store.read_all()) == before


def test_truncate_is_refused_on_postgres(
    store: EventStore, engine: Engine, db_backend: str
) -> None:
    if db_backend != "postgres":
        pytest.skip("SQLite has no TRUNCATE (its DELETE trigger covers it)")
    enqueue(store)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events")
    assert count(engine) == 1


# -- tailing never skips a late commit ------------------------------------------------------


def test_reader_never_skips_an_event_that_commits_late(store: EventStore, engine: Engine) -> None:
    """An earlier transaction holds the log open while later appenders try to commit.

    The appenders wait for the write lock, so no position beyond the open
    transaction's can become visible before it; a tailing reader sees a
    gap-free, ordered prefix at every moment.
    """
    enqueue(store, key="seed")
    open_tx_entered = threading.Event()
    release = threading.Event()

    def slow_append() -> None:
        with store._writing() as (conn, head):  # the same path every append takes
            store._insert(conn, head, [StreamAppend("slow-job", 0, [_enqueued("slow")])])
            open_tx_entered.set()
            release.wait(10)

    slow = threading.Thread(target=slow_append)
    slow.start()
    assert open_tx_entered.wait(10)
    later = [threading.Thread(target=enqueue, args=(store, f"late-{n}")) for n in range(3)]
    for thread in later:
        thread.start()
    seen_while_open = [e.position for e in store.read_all()]
    assert seen_while_open == [1]
    release.set()
    slow.join(10)
    for thread in later:
        thread.join(10)
    positions = [e.position for e in store.read_all()]
    assert positions == [1, 2, 3, 4, 5]
    assert next(e for e in store.read_all() if e.position == 2).job_id == "slow-job"


def _enqueued(key: str) -> NewEvent:
    r = request(idempotency_key=key)
    data = {"request": r.as_record(), "fingerprint": r.fingerprint(), "max_attempts": 1}
    return NewEvent(EventType.ENQUEUED, data | {"due_at": None}, "test")


def test_missing_schema_is_a_clear_error(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SchemaNotReady, match="ledger init"):
        EventStore(engine).head()
    engine.dispose()


# -- batched enqueue ------------------------------------------------------------------


def test_enqueue_many_in_one_transaction(store: EventStore, engine: Engine) -> None:
    existing = store.enqueue(request(idempotency_key="old"), max_attempts=3)
    batch = [
        request(idempotency_key="a"),
        request(idempotency_key="old"),  # seen before: the existing job
        request(idempotency_key="b", amount=5),
        request(idempotency_key="a"),  # repeated in the batch: the same new job
    ]
    results = store.enqueue_many(batch, max_attempts=3)
    assert [r.created for r in results] == [True, False, True, False]
    assert results[1].job_id == existing.job_id
    assert results[3].job_id == results[0].job_id
    assert count(engine) == 3
    positions = [e.position for e in store.read_all()]
    assert positions == [1, 2, 3]


@pytest.mark.parametrize(
    "batch_keys_amounts",
    [
        [("new", 1), ("old", 99)],  # conflicts with the log
        [("x", 1), ("x", 2)],  # conflicts within the batch
    ],
)
def test_enqueue_many_conflict_appends_nothing(
    store: EventStore, engine: Engine, batch_keys_amounts: list[tuple[str, int]]
) -> None:
    store.enqueue(request(idempotency_key="old", amount=1), max_attempts=3)
    batch = [request(idempotency_key=k, amount=a) for k, a in batch_keys_amounts]
    with pytest.raises(IdempotencyConflict):
        store.enqueue_many(batch, max_attempts=3)
    assert count(engine) == 1
