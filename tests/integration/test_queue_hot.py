"""The hot queue contract (Lua scripts), run on fakeredis and a real Redis alike."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import redis

from ledger.lifecycle import JobStatus
from ledger.queue import HotQueue, QueueKeys
from ledger.queue.hotqueue import CHUNK
from tests.backends import REDIS_URL, unavailable
from tests.factories import T0
from tests.queue_fixtures import unique_queue
from tests.unit.test_queue_decisions import job

LEASE_MS = 30_000


def now_ms(queue: HotQueue) -> int:
    return queue.depths().now_ms


def test_push_is_idempotent_and_claim_is_fifo(hot_queue: HotQueue) -> None:
    assert hot_queue.push([("a", 0), ("b", 0)]) == 2
    assert hot_queue.push([("a", 0), ("b", 0), ("c", 0)]) == 1
    assert hot_queue.depths().ready == 3
    got = hot_queue.claim(2, LEASE_MS)
    assert got.job_ids == ["a", "b"]
    assert hot_queue.claim(5, LEASE_MS).job_ids == ["c"]
    assert hot_queue.claim(5, LEASE_MS).job_ids == []


def test_a_job_held_anywhere_is_not_pushed_again(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)])
    hot_queue.claim(1, LEASE_MS)
    far = now_ms(hot_queue) + 3_600_000
    hot_queue.push([("d", far)])
    assert hot_queue.push([("a", 0), ("d", 0)]) == 0
    assert hot_queue.holds("a") == "inflight"
    assert hot_queue.holds("d") == "delayed"
    assert hot_queue.restore([("a", 1), ("d", 1)]) == 0


def test_lease_deadline_comes_from_redis_time(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)])
    got = hot_queue.claim(1, LEASE_MS)
    assert hot_queue.score("a", "inflight") == got.now_ms + LEASE_MS
    depths = hot_queue.depths()
    assert (depths.ready, depths.inflight, depths.expired_leases) == (0, 1, 0)


def test_delayed_jobs_are_promoted_only_when_due(hot_queue: HotQueue) -> None:
    now = now_ms(hot_queue)
    hot_queue.push([("later", now + 3_600_000), ("past", now - 1000)])
    assert hot_queue.holds("past") == "ready"
    got = hot_queue.claim(5, LEASE_MS)
    assert got.job_ids == ["past"]
    assert got.next_due_ms == now + 3_600_000
    # moved to a due time already passed: claimable at once
    hot_queue.move([("later", now - 1)])
    assert hot_queue.claim(5, LEASE_MS).job_ids == ["later"]
    assert hot_queue.claim(5, LEASE_MS).next_due_ms is None


def test_move_forces_a_place_and_wakes_claimers(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)])
    hot_queue.claim(1, LEASE_MS)
    assert hot_queue.move([("a", now_ms(hot_queue) + 60_000)]) == 0
    assert hot_queue.holds("a") == "delayed"
    assert hot_queue.move([("a", 0)]) == 1
    assert hot_queue.holds("a") == "ready"
    assert hot_queue.wait(0.01) is True


def test_wait_returns_at_timeout_when_nothing_is_pushed(hot_queue: HotQueue) -> None:
    assert hot_queue.wait(0.05) is False


def test_wait_wakes_on_a_push_from_another_thread(hot_queue: HotQueue) -> None:
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(hot_queue.wait(30)))
    waiter.start()
    hot_queue.push([("a", 0)])
    waiter.join(timeout=30)
    assert woken == [True]


def test_renew_extends_held_leases_and_reports_lost_ones(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)])
    got = hot_queue.claim(1, 1000)
    assert hot_queue.renew(["a", "gone"], LEASE_MS) == ["gone"]
    assert hot_queue.score("a", "inflight") >= got.now_ms + LEASE_MS  # type: ignore[operator]
    assert hot_queue.holds("gone") is None


def test_reap_takes_expired_leases_once(hot_queue: HotQueue) -> None:
    hot_queue.restore([("old", 1), ("fresh", now_ms(hot_queue) + LEASE_MS)])
    assert hot_queue.depths().expired_leases == 1
    assert hot_queue.reap(10, 10_000) == ["old"]
    # held for the grace period: a second reaper does not see it
    assert hot_queue.reap(10, 10_000) == []
    assert hot_queue.holds("old") == "inflight"


def test_finish_drops_the_job_and_its_payload(hot_queue: HotQueue) -> None:
    hot_queue.push([("j", 0)], [job()])
    assert set(hot_queue.cached(["j", "other"])) == {"j"}
    assert hot_queue.finish(["j", "never"]) == 1
    assert hot_queue.holds("j") is None
    assert hot_queue.cached(["j"]) == {}


def test_payload_cache_has_a_ttl(hot_queue: HotQueue) -> None:
    hot_queue.cache([job()])
    ttl = hot_queue.client.ttl(hot_queue.keys.payload("j"))
    assert 0 < ttl <= hot_queue.payload_ttl_seconds


def test_cache_only_missing_keeps_newer_entries(hot_queue: HotQueue) -> None:
    hot_queue.cache([job(version=5)])
    hot_queue.cache([job(version=2)], only_missing=True)
    assert hot_queue.cached(["j"])["j"].version == 5


def test_a_push_bigger_than_one_script_call_caches_and_pushes_every_job(
    hot_queue: HotQueue,
) -> None:
    jobs = [job(job_id=f"j{n}") for n in range(CHUNK * 2 + 7)]
    assert hot_queue.push([(j.job_id, 0) for j in jobs], jobs) == len(jobs)
    assert set(hot_queue.cached([j.job_id for j in jobs])) == {j.job_id for j in jobs}
    # a second push holds nothing new and overwrites the cache with what it is given
    newer = [replace(j, version=2) for j in jobs[:3]]
    assert hot_queue.push([(j.job_id, 0) for j in newer], newer) == 0
    assert {j.version for j in hot_queue.cached([j.job_id for j in jobs[:3]]).values()} == {2}


def test_pushes_and_caching_survive_redis_losing_its_scripts(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)], [job(job_id="a")])
    hot_queue.client.script_flush()  # what a restart or failover does to loaded scripts
    assert hot_queue.push([("b", 0)], [job(job_id="b")]) == 1
    hot_queue.client.script_flush()
    hot_queue.cache([job(job_id="c")])
    assert set(hot_queue.cached(["a", "b", "c"])) == {"a", "b", "c"}
    assert hot_queue.holds("b") == "ready"


def test_clean_payloads_drops_entries_of_jobs_not_queued(hot_queue: HotQueue) -> None:
    hot_queue.push([("j", 0)], [job()])
    hot_queue.cache([job(job_id="done"), job(job_id="gone")])
    assert hot_queue.clean_payloads(batch=1) == 2
    assert set(hot_queue.cached(["j", "done", "gone"])) == {"j"}


def test_depths_and_oldest_waiting_age(hot_queue: HotQueue) -> None:
    now = now_ms(hot_queue)
    hot_queue.push([("a", now - 5000), ("b", 0), ("c", now + 60_000)])
    hot_queue.restore([("d", now - 1)])
    depths = hot_queue.depths()
    assert (depths.ready, depths.delayed, depths.inflight, depths.expired_leases) == (2, 1, 1, 1)
    assert depths.oldest_waiting_seconds is not None
    assert depths.oldest_waiting_seconds >= 5.0


def test_flushed_detection(hot_queue: HotQueue) -> None:
    assert hot_queue.looks_flushed()
    hot_queue.mark_recovered()
    assert not hot_queue.looks_flushed()
    hot_queue.client.delete(hot_queue.keys.epoch)
    assert hot_queue.looks_flushed()


def test_big_batches_are_chunked(hot_queue: HotQueue) -> None:
    ids = [f"j{n:05d}" for n in range(1234)]
    assert hot_queue.push([(i, 0) for i in ids]) == 1234
    got = hot_queue.claim(2000, LEASE_MS)
    assert sorted(got.job_ids) == ids
    assert hot_queue.renew(ids, LEASE_MS) == []
    assert hot_queue.finish(ids) == 1234


def test_a_job_twice_in_one_push_is_pushed_once(hot_queue: HotQueue) -> None:
    assert hot_queue.push([("a", 0), ("b", 0), ("a", 0)]) == 2
    assert hot_queue.depths().ready == 2


def test_a_job_twice_in_one_move_goes_where_its_last_pair_says(hot_queue: HotQueue) -> None:
    later = now_ms(hot_queue) + 60_000
    assert hot_queue.move([("a", 0), ("a", later), ("b", later), ("b", 0)]) == 1
    assert (hot_queue.holds("a"), hot_queue.holds("b")) == ("delayed", "ready")
    depths = hot_queue.depths()
    assert (depths.ready, depths.delayed) == (1, 1)


def test_one_claim_and_one_promotion_bigger_than_a_lua_stack_slice(
    hot_queue: HotQueue,
) -> None:
    # the scripts hand 4,000 values at a time to one command: 2,000 jobs with scores
    now = now_ms(hot_queue)
    ids = [f"j{n:05d}" for n in range(4321)]
    hot_queue.push([(i, now + 3_600_000) for i in ids])
    assert hot_queue.depths().delayed == 4321
    hot_queue.client.zadd(hot_queue.keys.delayed, dict.fromkeys(ids, now - 1))
    got = hot_queue.claim(5000, LEASE_MS, promote=5000)
    assert sorted(got.job_ids) == ids
    assert hot_queue.depths().inflight == 4321
    assert hot_queue.finish(ids) == 4321


def test_a_push_leaves_at_most_the_cap_of_wake_tokens(hot_queue: HotQueue) -> None:
    hot_queue.push([(f"j{n}", 0) for n in range(100)])
    assert hot_queue.client.llen(hot_queue.keys.notify) == hot_queue.wake_tokens
    hot_queue.push([("one more", 0)])
    assert hot_queue.client.llen(hot_queue.keys.notify) == hot_queue.wake_tokens


def test_the_shared_real_redis_passes_the_eviction_check() -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        unavailable("Redis", exc)
    HotQueue(client, QueueKeys(unique_queue())).check_safe()  # the test server runs noeviction
    client.close()


def test_due_time_of_a_snapshot(hot_queue: HotQueue) -> None:
    waiting = job(status=JobStatus.WAITING, due_at=T0 + timedelta(seconds=1))
    hot_queue.cache([waiting])
    assert hot_queue.cached(["j"])["j"].due_at == T0 + timedelta(seconds=1)
