"""Build the hot queue from settings: a real Redis, a Redis Cluster, or in-process fakeredis."""

from __future__ import annotations

import fakeredis
import redis

from ledger.queue.hotqueue import HotQueue, RedisClient
from ledger.queue.keys import QueueKeys
from ledger.settings import Settings


def redis_client(url: str | None, *, cluster: bool = False) -> tuple[RedisClient, bool]:
    """A client for ``url``, or a fresh in-process fakeredis when it is unset.

    With ``cluster`` the URL names any node of a Redis Cluster; redis-py's
    ``RedisCluster`` reads the slot map from it and follows ``MOVED`` after a
    failover. Returns the client and whether it is embedded. Every embedded
    client gets its own ``FakeServer``: nothing is shared between ledgers
    through module state.
    """
    if url is None:
        return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True), True
    if cluster:
        return redis.RedisCluster.from_url(url, decode_responses=True), False
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30), False


def build_queue(settings: Settings) -> HotQueue:
    """The hot queue named by ``LEDGER_QUEUE_NAME`` in ``LEDGER_REDIS_URL``."""
    client, embedded = redis_client(settings.redis_url, cluster=settings.redis_cluster)
    return HotQueue(
        client,
        QueueKeys(settings.queue_name),
        payload_ttl_seconds=settings.payload_ttl_seconds,
        embedded=embedded,
    )
