"""What only the Redis hot queue has (TTLs, lost scripts, Lua stack slices, wake-up
tokens, the eviction check), on fakeredis and a real Redis. The port's contract,
run on every implementation, is ``tests/contracts/test_work_queue.py``."""

from __future__ import annotations

import redis

from ledger.queue import HotQueue, QueueKeys
from tests.backends import REDIS_URL, unavailable
from tests.queue_fixtures import holds, unique_queue
from tests.unit.test_queue_decisions import job

LEASE_MS = 30_000


def now_ms(queue: HotQueue) -> int:
    return queue.depths().now_ms


def test_payload_cache_has_a_ttl(hot_queue: HotQueue) -> None:
    hot_queue.cache([job()])
    ttl = hot_queue.client.ttl(hot_queue.keys.payload("j"))
    assert 0 < ttl <= hot_queue.payload_ttl_seconds


def test_pushes_and_caching_survive_redis_losing_its_scripts(hot_queue: HotQueue) -> None:
    hot_queue.push([("a", 0)], [job(job_id="a")])
    hot_queue.client.script_flush()  # what a restart or failover does to loaded scripts
    assert hot_queue.push([("b", 0)], [job(job_id="b")]) == 1
    hot_queue.client.script_flush()
    hot_queue.cache([job(job_id="c")])
    assert set(hot_queue.cached(["a", "b", "c"])) == {"a", "b", "c"}
    assert holds(hot_queue, "b") == "ready"


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
