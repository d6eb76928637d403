"""The worker in-process (threads), on SQLite + fakeredis and PostgreSQL + Redis."""

from __future__ import annotations

import threading
from datetime import timedelta

from ledger.lifecycle import JobStatus
from ledger.service import ClaimedJob, Ledger
from ledger.worker import Worker, WorkerOptions
from tests.factories import request
from tests.faults.handlers import async_ok, mixed
from tests.queue_fixtures import on_stacks, summarise, wait_until

STACKS = [("sqlite", "fakeredis"), ("postgres", "redis"), ("postgres", "cluster")]


# direct parametrization overrides the db_backend/redis_backend fixtures for this module
pytestmark = on_stacks(STACKS)


def options(**changes: object) -> WorkerOptions:
    base: dict[str, object] = {
        "concurrency": 4,
        "burst": True,
        "lease": timedelta(seconds=10),
        "sweep_seconds": 0.05,
        "idle_seconds": 0.2,
    }
    base.update(changes)
    return WorkerOptions(**base)  # type: ignore[arg-type]


def test_burst_runs_a_mix_to_the_end(ledger: Ledger) -> None:
    modes = ["ok", "flaky", "permanent"] * 15
    ids = {mode_: [] for mode_ in ("ok", "flaky", "permanent")}  # type: dict[str, list[str]]
    for n, mode in enumerate(modes):
        job = ledger.enqueue(request(idempotency_key=f"k{n}", metadata={"mode": mode}))
        ids[mode].append(job.job_id)
    stats = Worker(ledger, mixed, options()).run()
    summary = summarise(ledger.store)
    assert summary.duplicated == {}
    for job_id in ids["ok"] + ids["flaky"]:
        assert summary.jobs[job_id].status is JobStatus.COMPLETED
    for job_id in ids["flaky"]:
        assert summary.jobs[job_id].attempts == 2
    for job_id in ids["permanent"]:
        assert summary.jobs[job_id].status is JobStatus.DEAD
        assert summary.jobs[job_id].attempts == 1
    assert (stats.completed, stats.retried, stats.dead_lettered) == (30, 15, 15)
    assert stats.claimed == 60 and stats.refused == 0
    depths = ledger.queue.depths()
    assert depths.ready + depths.delayed + depths.inflight == 0


def test_async_handlers_are_accepted(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    Worker(ledger, async_ok, options()).run()
    assert ledger.job(job_id).status is JobStatus.COMPLETED


def test_worker_relays_jobs_the_log_has_and_redis_lacks(ledger: Ledger) -> None:
    # committed by another process whose push never reached this Redis
    job_id = ledger.store.enqueue(request(), max_attempts=3).job_id
    Worker(ledger, mixed, options()).run()
    assert ledger.job(job_id).status is JobStatus.COMPLETED


def test_graceful_stop_finishes_the_running_job(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    started, release = threading.Event(), threading.Event()

    def blocking(job: ClaimedJob) -> None:
        started.set()
        release.wait(30)

    worker = Worker(ledger, blocking, options(burst=False, concurrency=1))
    runner = threading.Thread(target=worker.run)
    runner.start()
    assert started.wait(30)
    worker.stop()
    later = ledger.enqueue(request(idempotency_key="after-stop")).job_id
    release.set()
    runner.join(30)
    assert not runner.is_alive()
    assert ledger.job(job_id).status is JobStatus.COMPLETED
    assert ledger.job(later).status is JobStatus.WAITING
    assert ledger.job(later).attempts == 0


def test_leases_are_renewed_while_the_handler_runs(ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    done = threading.Event()

    def long_running(job: ClaimedJob) -> None:
        # outlive the lease several times over while the reaper runs every 50 ms
        wait_until(lambda: ledger.queue.depths().now_ms > _ms(job.lease_until) + 1500, 30, "time")
        done.set()

    Worker(ledger, long_running, options(lease=timedelta(milliseconds=600), concurrency=1)).run()
    assert done.is_set()
    job = ledger.job(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1


def _ms(moment: object) -> int:
    return int(moment.timestamp() * 1000)  # type: ignore[attr-defined]


def test_claims_wait_for_half_the_capacity_unless_handlers_would_idle(ledger: Ledger) -> None:
    worker = Worker(ledger, lambda _job: None, options(concurrency=8, prefetch=256))
    assert worker.capacity == 264
    # held jobs -> how many to claim (0: not worth a transaction yet)
    table = {0: 264, 7: 257, 8: 256, 132: 132, 133: 0, 263: 0, 264: 0}
    assert {held: worker._claim_size(held) for held in table} == table
    small = Worker(ledger, lambda _job: None, options(concurrency=4, prefetch=0))
    assert {held: small._claim_size(held) for held in (0, 2, 3, 4)} == {0: 4, 2: 2, 3: 1, 4: 0}


def test_stop_takes_no_lock_so_a_signal_handler_can_call_it(ledger: Ledger) -> None:
    # SIGTERM's handler runs in the main thread, which spends its life inside
    # ``Event.wait``; an Event's lock held there would deadlock a stop that sets it
    worker = Worker(ledger, mixed, options(burst=False))
    with worker._stop._cond:  # what the main thread holds inside Event.wait
        stopper = threading.Thread(target=worker.stop)
        stopper.start()
        stopper.join(5)
        assert not stopper.is_alive()
    assert worker.stopping
    runner = threading.Thread(target=worker.run)
    runner.start()
    runner.join(30)
    assert not runner.is_alive()


def test_burst_leaves_jobs_delayed_past_its_horizon(ledger: Ledger) -> None:
    """Only far-delayed jobs left: a burst run stops and says how many it left."""
    ledger.enqueue(request(idempotency_key="later"), delay=timedelta(days=2))
    done_id = ledger.enqueue(request(idempotency_key="now")).job_id
    worker = Worker(ledger, mixed, options(burst_horizon=timedelta(seconds=30)))
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(worker.run()), daemon=True)
    runner.start()
    runner.join(60)  # a bound for a hang, not a measure of speed
    if runner.is_alive():
        worker.stop()
        runner.join(30)
    assert result, "the burst worker did not stop with only far-delayed jobs left"
    assert worker.stats.delayed_left == 1
    assert ledger.job(done_id).status is JobStatus.COMPLETED
