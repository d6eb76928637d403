"""The operator stream (events of no job) and pause/resume, on SQLite + fakeredis and
PostgreSQL + Redis: the log holds the controls, the claim script obeys them, the job
folds, recovery, verify, exports and as-of reads take the stream in their stride."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ledger.audit.queries import EventFilters, iter_events
from ledger.audit.verify import verify_log
from ledger.control import NO_CONTROLS, pause_event
from ledger.errors import JobNotFound
from ledger.events import OPERATOR_STREAM, EventType, NewEvent
from ledger.lifecycle import JobStatus
from ledger.service import Ledger
from ledger.worker import Worker, WorkerOptions
from projections import as_of, queries
from projections.runner import Projector
from tests.factories import request
from tests.faults.handlers import ok
from tests.queue_fixtures import on_stacks, wait_until

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])


def options(**changes: object) -> WorkerOptions:
    base: dict[str, object] = {
        "concurrency": 2,
        "burst": True,
        "lease": timedelta(seconds=10),
        "sweep_seconds": 0.05,
        "idle_seconds": 0.05,
    }
    base.update(changes)
    return WorkerOptions(**base)  # type: ignore[arg-type]


def test_pause_and_resume_are_events_of_the_operator_stream(ledger: Ledger) -> None:
    assert ledger.controls().paused is False
    paused = ledger.pause(actor="ana", reason="provider down")
    assert paused.appended and paused.controls.paused
    again = ledger.pause(actor="bo", reason="twice")
    assert not again.appended and again.controls.actor == "ana"
    resumed = ledger.resume(actor="bo", reason="provider back")
    assert resumed.appended and not resumed.controls.paused
    events = ledger.store.read_stream(OPERATOR_STREAM)
    assert [(e.type, e.version, e.actor) for e in events] == [
        (EventType.PAUSED, 1, "ana"),
        (EventType.RESUMED, 2, "bo"),
    ]
    assert events[0].data == {"reason": "provider down", "controls": {"paused": True, "rate": 0}}


def test_a_paused_queue_is_not_claimed_but_takes_enqueues(ledger: Ledger) -> None:
    ledger.pause(actor="ana", reason="provider down")
    job_id = ledger.enqueue(request()).job_id
    batch = ledger.claim_batch("w1", 10, timedelta(seconds=10))
    assert batch.jobs == [] and batch.paused
    assert ledger.queue.depths().ready == 1
    ledger.resume(actor="ana", reason="provider back")
    claimed = ledger.claim_batch("w1", 10, timedelta(seconds=10))
    assert [job.id for job in claimed.jobs] == [job_id] and not claimed.paused


def test_a_burst_worker_on_a_paused_queue_exits_and_leaves_the_jobs(ledger: Ledger) -> None:
    ids = [ledger.enqueue(request(idempotency_key=f"k{n}")).job_id for n in range(3)]
    ledger.pause(actor="ana", reason="provider down")
    stats = Worker(ledger, ok, options()).run()
    assert stats.claimed == 0 and stats.paused
    assert {ledger.job(job_id).status for job_id in ids} == {JobStatus.WAITING}


def test_a_running_worker_stops_claiming_when_paused(ledger: Ledger) -> None:
    worker = Worker(ledger, ok, options(burst=False))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        first = ledger.enqueue(request(idempotency_key="first")).job_id
        wait_until(lambda: ledger.job(first).status is JobStatus.COMPLETED, 10, "first job done")
        ledger.pause(actor="ana", reason="provider down")
        second = ledger.enqueue(request(idempotency_key="second")).job_id
        # the worker keeps claiming in a loop; a paused queue gives it nothing
        wait_until(lambda: worker.paused, 10, "the worker sees the pause")
        assert ledger.job(second).status is JobStatus.WAITING
        ledger.resume(actor="ana", reason="provider back")
        wait_until(lambda: ledger.job(second).status is JobStatus.COMPLETED, 10, "resumed")
    finally:
        worker.stop()
        thread.join(10)


def test_the_pause_survives_the_loss_of_redis(ledger: Ledger) -> None:
    ledger.pause(actor="ana", reason="provider down")
    ledger.recover()
    for key in ledger.queue.client.scan_iter(match=f"{ledger.queue.keys.tag}:*"):
        ledger.queue.client.delete(key)
    job_id = ledger.enqueue(request()).job_id
    report = ledger.sweep()  # sees the flush: recovers, the controls first
    assert report.recovered
    assert ledger.claim_batch("w1", 10, timedelta(seconds=10)).paused
    assert ledger.job(job_id).status is JobStatus.WAITING


def test_a_pause_redis_missed_is_told_by_the_sweep(ledger: Ledger) -> None:
    ledger.recover()
    ledger.store.append(OPERATOR_STREAM, 0, [pause_event_for_test()])
    assert not ledger.claim_batch("w1", 1, timedelta(seconds=10)).paused
    ledger.sweep()
    assert ledger.claim_batch("w1", 1, timedelta(seconds=10)).paused


def pause_event_for_test() -> NewEvent:
    event = pause_event(NO_CONTROLS, actor="ana", reason="written behind Redis' back")
    assert event is not None
    return event


def test_job_folds_recovery_verify_and_as_of_leave_the_stream_out(ledger: Ledger) -> None:
    done = ledger.enqueue(request(idempotency_key="a")).job_id
    ledger.pause(actor="ana", reason="provider down")
    waiting = ledger.enqueue(request(idempotency_key="b")).job_id
    ledger.resume(actor="ana", reason="provider back")
    (claimed,) = ledger.claim("w1", 1, timedelta(seconds=10))
    assert claimed.id == done
    ledger.complete(claimed, claimed.attempt)
    ledger.pause(actor="ana", reason="again")
    Projector(ledger.store).catch_up()
    stats = queries.stats(ledger.engine, datetime.now(UTC))
    replayed = as_of.stats_as_of(ledger.store, datetime.now(UTC) + timedelta(seconds=1))
    assert stats.count("completed") == replayed.count("completed") == 1
    assert stats.count("waiting") == replayed.count("waiting") == 1
    report = ledger.recover()
    assert report.live == 1  # the waiting job; the operator stream is no job
    assert verify_log(ledger.engine).ok
    assert ledger.job(waiting).status is JobStatus.WAITING


def test_verify_names_an_operator_event_in_a_job_stream(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    ledger.store.append(job_id, 1, [pause_event_for_test()])
    result = verify_log(ledger.engine)
    assert not result.ok and result.problem is not None
    assert "an operator event in a job's stream" in result.problem.detail


def test_the_rate_limit_bounds_the_attempts_started_per_second(ledger: Ledger) -> None:
    ledger.recover()
    for n in range(10):
        ledger.enqueue(request(idempotency_key=f"r{n}"))
    set_ = ledger.set_limits(rate=3, actor="ana", reason="provider allows 3/s")
    assert set_.appended and set_.controls.rate == 3
    assert not ledger.set_limits(rate=3, actor="ana", reason="again").appended
    first = ledger.claim_batch("w1", 10, timedelta(seconds=10))
    assert len(first.jobs) == 3  # the bucket starts with one second's worth
    second = ledger.claim_batch("w1", 10, timedelta(seconds=10))
    # refilled at 3 a second meanwhile: at most one more, unless a second went by
    assert len(second.jobs) <= 1 or second.now - first.now >= timedelta(seconds=1)
    if not second.jobs:
        assert second.next_due is not None and second.next_due > second.now
    # pausing keeps the limit; lifting it lets the rest go
    ledger.pause(actor="ana", reason="p")
    assert ledger.controls().rate == 3
    ledger.resume(actor="ana", reason="r")
    ledger.set_limits(rate=0, actor="ana", reason="lifted")
    rest = ledger.claim_batch("w1", 10, timedelta(seconds=10))
    assert len(first.jobs) + len(second.jobs) + len(rest.jobs) == 10
    kinds = [e.type for e in ledger.store.read_stream(OPERATOR_STREAM)]
    assert kinds.count(EventType.LIMITS_SET) == 2


def test_the_operator_stream_is_in_exports_and_no_job(ledger: Ledger) -> None:
    ledger.enqueue(request())
    ledger.pause(actor="ana", reason="provider down")
    exported = list(iter_events(ledger.engine, EventFilters()))
    assert [(e.job_id, e.type) for e in exported][-1] == (OPERATOR_STREAM, "paused")
    assert exported[-1].amount is None and exported[-1].user_id is None
    with pytest.raises(JobNotFound):
        ledger.job(OPERATOR_STREAM)
    with pytest.raises(JobNotFound):
        ledger.cancel(OPERATOR_STREAM, actor="ana", reason="no")
