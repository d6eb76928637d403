"""The hot queue's contract (``ledger.ports.WorkQueue``): one suite, every implementation.

Runs on fakeredis, a real Redis and a local Redis Cluster (``HotQueue``, its Lua
scripts) and on the
in-memory twin (``tests.memory.MemoryQueue``); a new implementation passes it or
is not one. What only Redis has (TTLs, lost scripts, Lua stack slices, the
eviction check) stays in ``tests/integration/test_queue_hot.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from ledger.lifecycle import JobStatus
from ledger.ports import WorkQueue
from ledger.queue import HotQueue, QueueKeys
from ledger.queue.hotqueue import CHUNK
from tests.factories import T0
from tests.memory import MemoryQueue
from tests.queue_fixtures import (
    REDIS_BACKENDS,
    delete_queue_keys,
    holds,
    redis_client_on,
    score,
    unique_queue,
)
from tests.unit.test_queue_decisions import job

LEASE_MS = 30_000
QUEUE_IMPLEMENTATIONS = [*REDIS_BACKENDS, "memory"]


@pytest.fixture(params=QUEUE_IMPLEMENTATIONS)
def work_queue(request: pytest.FixtureRequest) -> Iterator[WorkQueue]:
    if request.param == "memory":
        yield MemoryQueue()
        return
    name = unique_queue()
    with redis_client_on(str(request.param), name, request) as client:
        yield HotQueue(client, QueueKeys(name), embedded=request.param == "fakeredis")


def now_ms(queue: WorkQueue) -> int:
    return queue.depths().now_ms


def lose_every_key(queue: WorkQueue) -> None:
    """What a FLUSHALL, or a restart without persistence, does to the queue."""
    if isinstance(queue, MemoryQueue):
        queue.flush()
    else:
        assert isinstance(queue, HotQueue)
        delete_queue_keys(queue.client, queue.keys.queue)


def test_flushed_detection(work_queue: WorkQueue) -> None:
    assert work_queue.looks_flushed()
    work_queue.mark_recovered()
    assert not work_queue.looks_flushed()
    lose_every_key(work_queue)
    assert work_queue.looks_flushed()


def test_a_cached_state_reads_back_equal(work_queue: WorkQueue) -> None:
    state = job(job_id="k", version=3)
    work_queue.cache([state])
    assert work_queue.cached(["k", "missing"]) == {"k": state}


def test_push_is_idempotent_and_claim_is_fifo(work_queue: WorkQueue) -> None:
    assert work_queue.push([("a", 0), ("b", 0)]) == 2
    assert work_queue.push([("a", 0), ("b", 0), ("c", 0)]) == 1
    assert work_queue.depths().ready == 3
    got = work_queue.claim(2, LEASE_MS)
    assert got.job_ids == ["a", "b"]
    assert work_queue.claim(5, LEASE_MS).job_ids == ["c"]
    assert work_queue.claim(5, LEASE_MS).job_ids == []


def test_a_job_held_anywhere_is_not_pushed_again(work_queue: WorkQueue) -> None:
    work_queue.push([("a", 0)])
    work_queue.claim(1, LEASE_MS)
    far = now_ms(work_queue) + 3_600_000
    work_queue.push([("d", far)])
    assert work_queue.push([("a", 0), ("d", 0)]) == 0
    assert holds(work_queue, "a") == "inflight"
    assert holds(work_queue, "d") == "delayed"
    assert work_queue.restore([("a", 1), ("d", 1)]) == 0


def test_lease_deadline_comes_from_redis_time(work_queue: WorkQueue) -> None:
    work_queue.push([("a", 0)])
    got = work_queue.claim(1, LEASE_MS)
    assert score(work_queue, "a", "inflight") == got.now_ms + LEASE_MS
    depths = work_queue.depths()
    assert (depths.ready, depths.inflight, depths.expired_leases) == (0, 1, 0)


def test_delayed_jobs_are_promoted_only_when_due(work_queue: WorkQueue) -> None:
    now = now_ms(work_queue)
    work_queue.push([("later", now + 3_600_000), ("past", now - 1000)])
    assert holds(work_queue, "past") == "ready"
    got = work_queue.claim(5, LEASE_MS)
    assert got.job_ids == ["past"]
    assert got.next_due_ms == now + 3_600_000
    # moved to a due time already passed: claimable at once
    work_queue.move([("later", now - 1)])
    assert work_queue.claim(5, LEASE_MS).job_ids == ["later"]
    assert work_queue.claim(5, LEASE_MS).next_due_ms is None


def test_move_forces_a_place_and_wakes_claimers(work_queue: WorkQueue) -> None:
    work_queue.push([("a", 0)])
    work_queue.claim(1, LEASE_MS)
    assert work_queue.move([("a", now_ms(work_queue) + 60_000)]) == 0
    assert holds(work_queue, "a") == "delayed"
    assert work_queue.move([("a", 0)]) == 1
    assert holds(work_queue, "a") == "ready"
    assert work_queue.wait(0.01) is True


def test_wait_returns_at_timeout_when_nothing_is_pushed(work_queue: WorkQueue) -> None:
    assert work_queue.wait(0.05) is False


def test_wait_wakes_on_a_push_from_another_thread(work_queue: WorkQueue) -> None:
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(work_queue.wait(30)))
    waiter.start()
    work_queue.push([("a", 0)])
    waiter.join(timeout=30)
    assert woken == [True]


def test_renew_extends_held_leases_and_reports_lost_ones(work_queue: WorkQueue) -> None:
    work_queue.push([("a", 0)])
    got = work_queue.claim(1, 1000)
    assert work_queue.renew(["a", "gone"], LEASE_MS) == ["gone"]
    assert score(work_queue, "a", "inflight") >= got.now_ms + LEASE_MS  # type: ignore[operator]
    assert holds(work_queue, "gone") is None


def test_reap_takes_expired_leases_once(work_queue: WorkQueue) -> None:
    work_queue.restore([("old", 1), ("fresh", now_ms(work_queue) + LEASE_MS)])
    assert work_queue.depths().expired_leases == 1
    assert work_queue.reap(10, 10_000) == ["old"]
    # held for the grace period: a second reaper does not see it
    assert work_queue.reap(10, 10_000) == []
    assert holds(work_queue, "old") == "inflight"


def test_finish_drops_the_job_and_its_payload(work_queue: WorkQueue) -> None:
    work_queue.push([("j", 0)], [job()])
    assert set(work_queue.cached(["j", "other"])) == {"j"}
    assert work_queue.finish(["j", "never"]) == 1
    assert holds(work_queue, "j") is None
    assert work_queue.cached(["j"]) == {}


def test_cache_only_missing_keeps_newer_entries(work_queue: WorkQueue) -> None:
    work_queue.cache([job(version=5)])
    work_queue.cache([job(version=2)], only_missing=True)
    assert work_queue.cached(["j"])["j"].version == 5


def test_a_push_bigger_than_one_script_call_caches_and_pushes_every_job(
    work_queue: WorkQueue,
) -> None:
    jobs = [job(job_id=f"j{n}") for n in range(CHUNK * 2 + 7)]
    assert work_queue.push([(j.job_id, 0) for j in jobs], jobs) == len(jobs)
    assert set(work_queue.cached([j.job_id for j in jobs])) == {j.job_id for j in jobs}
    # a second push holds nothing new and overwrites the cache with what it is given
    newer = [replace(j, version=2) for j in jobs[:3]]
    assert work_queue.push([(j.job_id, 0) for j in newer], newer) == 0
    assert {j.version for j in work_queue.cached([j.job_id for j in jobs[:3]]).values()} == {2}


def test_clean_payloads_drops_entries_of_jobs_not_queued(work_queue: WorkQueue) -> None:
    work_queue.push([("j", 0)], [job()])
    work_queue.cache([job(job_id="done"), job(job_id="gone")])
    assert work_queue.clean_payloads(batch=1) == 2
    assert set(work_queue.cached(["j", "done", "gone"])) == {"j"}


def test_depths_and_oldest_waiting_age(work_queue: WorkQueue) -> None:
    now = now_ms(work_queue)
    work_queue.push([("a", now - 5000), ("b", 0), ("c", now + 60_000)])
    work_queue.restore([("d", now - 1)])
    depths = work_queue.depths()
    assert (depths.ready, depths.delayed, depths.inflight, depths.expired_leases) == (2, 1, 1, 1)
    assert depths.oldest_waiting_seconds is not None
    assert depths.oldest_waiting_seconds >= 5.0


def test_big_batches_are_chunked(work_queue: WorkQueue) -> None:
    ids = [f"j{n:05d}" for n in range(1234)]
    assert work_queue.push([(i, 0) for i in ids]) == 1234
    got = work_queue.claim(2000, LEASE_MS)
    assert sorted(got.job_ids) == ids
    assert work_queue.renew(ids, LEASE_MS) == []
    assert work_queue.finish(ids) == 1234


def test_a_job_twice_in_one_push_is_pushed_once(work_queue: WorkQueue) -> None:
    assert work_queue.push([("a", 0), ("b", 0), ("a", 0)]) == 2
    assert work_queue.depths().ready == 2


def test_a_job_twice_in_one_move_goes_where_its_last_pair_says(work_queue: WorkQueue) -> None:
    later = now_ms(work_queue) + 60_000
    assert work_queue.move([("a", 0), ("a", later), ("b", later), ("b", 0)]) == 1
    assert (holds(work_queue, "a"), holds(work_queue, "b")) == ("delayed", "ready")
    depths = work_queue.depths()
    assert (depths.ready, depths.delayed) == (1, 1)


def test_due_time_of_a_snapshot(work_queue: WorkQueue) -> None:
    waiting = job(status=JobStatus.WAITING, due_at=T0 + timedelta(seconds=1))
    work_queue.cache([waiting])
    assert work_queue.cached(["j"])["j"].due_at == T0 + timedelta(seconds=1)
