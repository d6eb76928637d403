"""``Ledger`` and ``Worker`` on the in-memory ports: no database, no Redis, no server.

The same commands as ``tests/integration/test_queue_lifecycle.py`` and
``test_worker.py`` run there against SQL and Redis; here they run in
milliseconds on ``tests.memory`` (the twins pass the ports' contract suites in
``tests/contracts``, so what holds here holds there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ledger.claims import ClaimedJob
from ledger.errors import IdempotencyConflict, NotInDeadLetterQueue
from ledger.events import EventType
from ledger.handler import PermanentFailure
from ledger.lifecycle import JobStatus
from ledger.retry import RetryPolicy
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.worker import Worker, WorkerOptions
from tests.factories import request
from tests.memory import MemoryLog, MemoryQueue

LEASE = timedelta(seconds=30)


class Clock:
    """The one clock of the log and the queue (the database's and Redis' here), moved by hand."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)


def memory_ledger(clock: Clock | None = None, *, max_attempts: int = 3) -> Ledger:
    settings = Settings(
        database_url="sqlite://",
        retry_base_seconds=0.01,
        retry_cap_seconds=0.05,
        relay_grace_seconds=0.0,
        default_max_attempts=max_attempts,
    )
    clock = clock or Clock()
    return Ledger(
        settings=settings,
        # never connected: the ports below are the ledger's only backends here
        engine=sa.create_engine("sqlite://"),
        store=MemoryLog(clock=clock.now),
        queue=MemoryQueue(clock_ms=clock),
        # no backoff: a failed job is due again at once (no test waits for a clock)
        policy=RetryPolicy(0.0, 0.0),
    )


@pytest.fixture
def ledger() -> Ledger:
    return memory_ledger()


def queue_of(ledger: Ledger) -> MemoryQueue:
    assert isinstance(ledger.queue, MemoryQueue)
    return ledger.queue


def types(ledger: Ledger, job_id: str) -> list[EventType]:
    return [event.type for event in ledger.store.read_stream(job_id)]


def test_enqueue_logs_then_queues_idempotently(ledger: Ledger) -> None:
    first = ledger.enqueue(request())
    assert first.created and first.queued
    assert queue_of(ledger).holds(first.job_id) == "ready"
    again = ledger.enqueue(request())
    assert (again.job_id, again.created) == (first.job_id, False)
    with pytest.raises(IdempotencyConflict):
        ledger.enqueue(request(amount=1))
    assert ledger.job(first.job_id).status is JobStatus.WAITING
    assert ledger.store.head().position == 1


def test_claim_then_complete_leaves_the_queue(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    (claimed,) = ledger.claim("w1", 5, LEASE)
    assert claimed.id == job_id and queue_of(ledger).holds(job_id) == "inflight"
    assert ledger.complete(claimed, claimed.attempt).status is JobStatus.COMPLETED
    assert queue_of(ledger).holds(job_id) is None
    assert types(ledger, job_id) == ["enqueued", "attempted", "completed"]


def test_failures_retry_with_backoff_then_dead_letter_then_requeue(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    for attempt in (1, 2, 3):
        queue = queue_of(ledger)
        (claimed,) = ledger.claim("w1", 1, LEASE)
        assert claimed.attempt == attempt
        job = ledger.fail(claimed, attempt, "gateway said no")
        if attempt < 3:
            assert job.status is JobStatus.WAITING
            assert queue.holds(job_id) == "ready"
        else:
            assert job.status is JobStatus.DEAD
            assert queue.holds(job_id) is None
    requeued = ledger.requeue_from_dlq(job_id, actor="ops", reason="fixed")
    assert requeued.status is JobStatus.WAITING
    assert queue_of(ledger).holds(job_id) == "ready"
    with pytest.raises(NotInDeadLetterQueue):
        ledger.requeue_from_dlq(job_id, actor="ops", reason="again")


def test_recover_rebuilds_a_flushed_queue_from_the_log(ledger: Ledger) -> None:
    ids = [ledger.enqueue(request(idempotency_key=f"k{n}")).job_id for n in range(3)]
    (claimed,) = ledger.claim("w1", 1, LEASE)
    queue = queue_of(ledger)
    queue.flush()
    report = ledger.recover()
    assert (report.live, report.pushed, report.restored) == (3, 2, 1)
    assert {job_id: queue.holds(job_id) for job_id in ids} == {
        job_id: "inflight" if job_id == claimed.id else "ready" for job_id in ids
    }
    assert not queue.looks_flushed()


def test_an_expired_lease_is_reaped_into_a_retry() -> None:
    clock = Clock()
    ledger = memory_ledger(clock)
    job_id = ledger.enqueue(request()).job_id
    ledger.claim("w1", 1, timedelta(seconds=1))
    clock.ms += 60_000
    assert ledger.reap() == 1
    assert ledger.job(job_id).status is JobStatus.WAITING
    assert types(ledger, job_id)[-2:] == ["failed", "requeued"]


def test_a_burst_worker_drains_the_queue() -> None:
    ledger = memory_ledger(max_attempts=1)
    ids = [ledger.enqueue(request(idempotency_key=f"k{n}")).job_id for n in range(20)]
    refused = ids[7]

    def pay(job: ClaimedJob) -> None:
        if job.id == refused:
            raise PermanentFailure("account closed")

    options = WorkerOptions(concurrency=4, burst=True, idle_seconds=0.01, sweep_seconds=0.05)
    stats = Worker(ledger, pay, options, worker_id="unit").run()
    assert (stats.completed, stats.dead_lettered) == (19, 1)
    assert ledger.job(refused).status is JobStatus.DEAD
    assert all(
        ledger.job(job_id).status is JobStatus.COMPLETED for job_id in ids if job_id != refused
    )
    assert queue_of(ledger).depths().inflight == 0
