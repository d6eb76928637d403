"""Group commit of single enqueues (``Ledger.enqueue`` from many threads), on a real log.

Callers queue up behind a write held at a gate (the store's real ``enqueue_each``,
entered only when the test opens it), so which calls share a commit is decided
by the test, not by timing. Each caller must still get its own outcome, and
once the log holds a job its caller is never told it failed (invariant 11).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import Engine

from ledger.db import create_engine
from ledger.errors import DatabaseRefused, DatabaseUnavailable, IdempotencyConflict
from ledger.events import EventType
from ledger.queue import HotQueue, QueueKeys
from ledger.request import SettlementRequest
from ledger.service import Ledger
from ledger.store import EnqueueResult, EventStore, PreparedEnqueue
from tests.factories import request
from tests.queue_fixtures import free_port, holds, on_stacks, summarise, wait_until

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])


class Gate:
    """Wraps the store's ``enqueue_each``: the first write waits until the test opens it."""

    def __init__(self, write: Callable[[Sequence[PreparedEnqueue]], list[object]]) -> None:
        self.write = write
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, prepared: Sequence[PreparedEnqueue]) -> list[object]:
        self.batches.append([item.key for item in prepared])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.opened.wait(30), "the test never opened the gate"
        return self.write(prepared)


@pytest.fixture
def gate(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Gate:
    gate = Gate(ledger.store.enqueue_each)  # type: ignore[arg-type]
    monkeypatch.setattr(ledger.store, "enqueue_each", gate)
    return gate


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=40) as pool:
        yield pool


def behind_the_gate(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor, requests: list[SettlementRequest]
) -> tuple[Future[EnqueueResult], list[Future[EnqueueResult]]]:
    """A first enqueue held at the gate, then ``requests`` queued behind it, in this order."""
    first = pool.submit(ledger.enqueue, request(idempotency_key="first"))
    assert gate.entered.wait(30)
    futures = []
    for n, item in enumerate(requests, start=1):
        futures.append(pool.submit(ledger.enqueue, item))
        wait_until(lambda n=n: ledger._group.waiting == n, 30, f"caller {n} to queue")
    gate.opened.set()
    return first, futures


def enqueued_keys(ledger: Ledger) -> list[str | None]:
    return [e.idempotency_key for e in ledger.store.read_all() if e.type is EventType.ENQUEUED]


def test_concurrent_enqueues_share_a_commit_each_with_its_own_job(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    keys = [f"key-{n}" for n in range(24)]
    first, futures = behind_the_gate(ledger, gate, pool, [request(idempotency_key=k) for k in keys])
    results = [first.result(30)] + [f.result(30) for f in futures]
    assert gate.batches == [["first"], keys]  # one commit for the 24 that queued up
    assert all(r.created and r.queued for r in results)
    assert len({r.job_id for r in results}) == 25
    assert sorted(enqueued_keys(ledger), key=str) == sorted(["first", *keys])
    for result in results:
        assert holds(ledger.queue, result.job_id) == "ready"
    assert summarise(ledger.store).duplicated == {}


def test_free_running_threads_each_get_their_job(ledger: Ledger, pool: ThreadPoolExecutor) -> None:
    """No gate: however the calls happen to group, 60 keys give 60 jobs, 60 events."""
    keys = [f"free-{n}" for n in range(60)]
    futures = [pool.submit(ledger.enqueue, request(idempotency_key=k)) for k in keys]
    results = [f.result(60) for f in futures]
    assert all(r.created for r in results)
    assert len({r.job_id for r in results}) == 60
    assert sorted(enqueued_keys(ledger), key=str) == sorted(keys)
    assert ledger._group.items == 60


def test_a_key_repeated_with_the_same_request_maps_to_one_job(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    same = [request(idempotency_key="first") for _ in range(3)]  # the held write's key
    twins = [request(idempotency_key="twin") for _ in range(4)]  # new, four times in one batch
    first, futures = behind_the_gate(
        ledger, gate, pool, [*same, request(idempotency_key="other"), *twins]
    )
    results = [f.result(30) for f in futures]
    held = first.result(30)
    assert held.created
    assert [(r.job_id, r.created) for r in results[:3]] == [(held.job_id, False)] * 3
    assert results[3].created
    assert results[4].created and not any(r.created for r in results[5:])
    assert {r.job_id for r in results[4:]} == {results[4].job_id}
    assert sorted(enqueued_keys(ledger), key=str) == ["first", "other", "twin"]


def test_a_conflicting_key_fails_only_its_own_caller(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    ledger.store.enqueue(request(idempotency_key="known", amount=5), max_attempts=3)
    queued = [
        request(idempotency_key="a"),
        request(idempotency_key="known", amount=6),  # differs from the log's
        request(idempotency_key="b"),
        request(idempotency_key="b", amount=7),  # differs from the first "b" of the batch
        request(idempotency_key="c"),
    ]
    first, futures = behind_the_gate(ledger, gate, pool, queued)
    assert first.result(30).created
    outcomes = [f.exception(30) or f.result(30) for f in futures]
    assert isinstance(outcomes[1], IdempotencyConflict) and "known" in str(outcomes[1])
    assert isinstance(outcomes[3], IdempotencyConflict)
    created = [outcomes[0], outcomes[2], outcomes[4]]
    assert all(isinstance(o, EnqueueResult) and o.created for o in created)
    assert gate.batches[1] == ["a", "known", "b", "b", "c"]  # they did share the commit
    assert sorted(enqueued_keys(ledger), key=str) == ["a", "b", "c", "first", "known"]
    b_job = ledger.store.read_stream(outcomes[2].job_id)  # type: ignore[union-attr]
    assert b_job[0].data["request"]["amount"] == 10_000  # the first "b" won


def test_a_bad_argument_fails_its_caller_before_any_commit(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    gate.opened.set()
    with pytest.raises(ValueError, match="delay must not be negative"):
        ledger.enqueue(request(idempotency_key="neg"), delay=timedelta(seconds=-1))
    assert ledger.enqueue(request(idempotency_key="ok")).created
    assert gate.batches == [["ok"]]


def test_a_request_the_database_refuses_fails_alone(
    ledger: Ledger, gate: Gate, pool: ThreadPoolExecutor, db_backend: str
) -> None:
    """PostgreSQL refuses a NUL in text; the model refuses it first, unless bypassed as here."""
    if db_backend == "sqlite":
        pytest.skip("SQLite stores a NUL in text: no request of this kind is refused there")
    bad = request(idempotency_key="bad").model_copy(update={"user_id": "user\x00one"})
    queued = [request(idempotency_key="a"), bad, request(idempotency_key="b")]
    first, futures = behind_the_gate(ledger, gate, pool, queued)
    assert first.result(30).created
    assert futures[0].result(30).created
    assert isinstance(futures[1].exception(30), DatabaseRefused)
    assert futures[2].result(30).created
    assert sorted(enqueued_keys(ledger), key=str) == ["a", "b", "first"]


@pytest.fixture
def unreachable_database(db_backend: str, tmp_path: Path) -> Iterator[Engine]:
    if db_backend == "sqlite":
        url = f"sqlite:///{tmp_path}/no/such/folder/ledger.db"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=5"
    engine = create_engine(url)
    yield engine
    engine.dispose()


def test_a_database_outage_fails_every_caller_of_the_commit(
    ledger: Ledger,
    unreachable_database: Engine,
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = Ledger(
        settings=ledger.settings,
        engine=unreachable_database,
        store=EventStore(unreachable_database),
        queue=ledger.queue,
    )
    gate = Gate(down.store.enqueue_each)  # type: ignore[arg-type]
    monkeypatch.setattr(down.store, "enqueue_each", gate)
    first, futures = behind_the_gate(
        down, gate, pool, [request(idempotency_key=f"k{n}") for n in range(5)]
    )
    for future in [first, *futures]:
        assert isinstance(future.exception(30), DatabaseUnavailable)
    assert gate.batches == [["first"], ["k0", "k1", "k2", "k3", "k4"]]


def test_redis_away_after_the_commit_fails_no_caller(
    ledger: Ledger, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 11: the jobs are in the log, so every caller is told so (``queued=False``)."""
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=2, decode_responses=True)
    away = Ledger(
        settings=ledger.settings,
        engine=ledger.engine,
        store=ledger.store,
        queue=HotQueue(nowhere, QueueKeys(ledger.queue.keys.queue)),
    )
    gate = Gate(away.store.enqueue_each)  # type: ignore[arg-type]
    monkeypatch.setattr(away.store, "enqueue_each", gate)
    keys = [f"k{n}" for n in range(6)]
    first, futures = behind_the_gate(away, gate, pool, [request(idempotency_key=k) for k in keys])
    results = [first.result(30)] + [f.result(30) for f in futures]
    assert all(r.created and not r.queued for r in results)
    assert sorted(enqueued_keys(ledger), key=str) == sorted(["first", *keys])
    nowhere.close()
