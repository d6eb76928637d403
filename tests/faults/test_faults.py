"""Faults with real processes and a real (private) Redis, on SQLite and PostgreSQL.

Each test ends by counting from the log: lost = 0 and one completion per job.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from ledger.lifecycle import JobStatus
from ledger.service import Ledger
from tests.factories import request
from tests.faults.conftest import (
    ROOT,
    Workers,
    assert_exactly_once,
    count_events,
    worker_env,
)
from tests.queue_fixtures import OwnRedis, summarise, wait_until

pytestmark = pytest.mark.slow

HANDLER = "tests.faults.handlers:mixed"


def enqueue(ledger: Ledger, n: int, **metadata: object) -> set[str]:
    return {
        ledger.enqueue(request(idempotency_key=f"k{i}", metadata=dict(metadata))).job_id
        for i in range(n)
    }


def processing(ledger: Ledger) -> dict[str, str]:
    """job id -> worker id of every job the log shows in flight."""
    return {
        job_id: job.worker or ""
        for job_id, job in summarise(ledger.store).jobs.items()
        if job.status is JobStatus.PROCESSING
    }


def test_kill_9_worker_holding_leases(fault_ledger: Ledger, workers: Workers) -> None:
    ids = enqueue(fault_ledger, 40, mode="sleep", seconds=0.3)
    doomed = workers.start("--handler", HANDLER, "--concurrency", "4", "--lease", "1.5")
    wait_until(lambda: len(processing(fault_ledger)) >= 4, 60, "the worker to hold leases")
    doomed.signal(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    abandoned = set(processing(fault_ledger))
    assert abandoned, "the killed worker held no lease"

    stats = workers.start("--handler", HANDLER, "--concurrency", "8", "--burst").wait()
    assert stats["refused"] == 0
    assert_exactly_once(fault_ledger, ids)
    for job_id in abandoned:
        events = fault_ledger.store.read_stream(job_id)
        reasons = [e.data.get("reason") for e in events if e.type == "failed"]
        assert reasons == ["lease expired"]


def test_paused_worker_late_outcome_is_refused(fault_ledger: Ledger, workers: Workers) -> None:
    (job_id,) = enqueue(fault_ledger, 1, mode="sleep", seconds=1.5)
    paused = workers.start("--handler", HANDLER, "--lease", "1")
    wait_until(lambda: job_id in processing(fault_ledger), 60, "the first attempt")
    paused.signal(signal.SIGSTOP)
    try:
        rescuer = workers.start("--handler", HANDLER, "--burst", "--lease", "10").wait()
    finally:
        paused.signal(signal.SIGCONT)
    assert rescuer["completed"] == 1
    late = paused.stop()
    assert late["refused"] == 1 and late["completed"] == 0

    assert_exactly_once(fault_ledger, {job_id})
    events = fault_ledger.store.read_stream(job_id)
    assert [e.type.value for e in events] == [
        "enqueued",
        "attempted",
        "failed",
        "requeued",
        "attempted",
        "completed",
    ]
    assert events[2].data["reason"] == "lease expired" and events[2].data["attempt"] == 1
    assert events[5].data == {"attempt": 2, "amount": 10_000}
    assert events[5].actor == events[4].actor != events[1].actor


def test_two_workers_racing_on_the_same_jobs(fault_ledger: Ledger, workers: Workers) -> None:
    ids = enqueue(fault_ledger, 50, mode="sleep", seconds=0.02)
    done = threading.Event()

    def redeliver() -> None:
        # push every job back to ready again and again, in flight or not: both
        # workers then claim the same job ids; only the log decides
        while not done.is_set():
            fault_ledger.queue.move([(job_id, 0) for job_id in ids])
            done.wait(0.1)

    racer = threading.Thread(target=redeliver)
    racer.start()
    first = workers.start("--handler", HANDLER, "--concurrency", "4")
    second = workers.start("--handler", HANDLER, "--concurrency", "4")
    try:
        wait_until(
            lambda: count_events(fault_ledger.engine, "completed") >= len(ids), 120, "all jobs"
        )
    finally:
        done.set()
        racer.join()
    # one worker can finish every job while the other is still starting: a SIGTERM
    # before its handler is in place would kill it, which is not what this test is about
    first.wait_started()
    second.wait_started()
    first.stop()
    second.stop()
    assert_exactly_once(fault_ledger, ids)


def test_crash_between_commit_and_push_is_swept(
    fault_ledger: Ledger, workers: Workers, db_url: str, private_redis: OwnRedis
) -> None:
    worker = workers.start("--handler", HANDLER)
    wait_until(lambda: not fault_ledger.queue.looks_flushed(), 60, "the worker's recover")
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.faults.crash_enqueue", "crash-key"],
        env=worker_env(db_url, private_redis.url),
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 3, crashed.stderr
    keyed = [e.job_id for e in fault_ledger.reader.read_all() if e.idempotency_key == "crash-key"]
    assert len(keyed) == 1
    job_id = keyed[0]
    wait_until(lambda: fault_ledger.job(job_id).status is JobStatus.COMPLETED, 60, "the swept job")
    assert worker.stop()["completed"] == 1
    assert_exactly_once(fault_ledger, {job_id})


def test_flushall_halfway_through_2000_jobs(
    fault_ledger: Ledger, workers: Workers, private_redis: OwnRedis
) -> None:
    ids = enqueue(fault_ledger, 2000)
    running = [
        workers.start("--handler", HANDLER, "--concurrency", "8", "--lease", "5") for _ in range(2)
    ]
    engine = fault_ledger.engine
    wait_until(lambda: count_events(engine, "completed") >= 1000, 300, "half the jobs", every=0.01)
    private_redis.client().flushall()
    wait_until(lambda: count_events(engine, "completed") >= 2000, 300, "the rest", every=0.2)
    for worker in running:
        worker.stop()
    assert any("Redis had lost the queue" in w.stderr.read_text() for w in running)
    assert count_events(engine, "completed") == 2000
    assert_exactly_once(fault_ledger, ids)
