"""Dramatiq actors for the benchmark (imported by ``dramatiq bench.peers.dramatiq_tasks``)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from bench.jobs import MAX_ATTEMPTS, run_job

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


# retries: backoff of a few ms (min_backoff/max_backoff are in ms), so the
# benchmark measures the queue's retry machinery, not sleeping
@dramatiq.actor(max_retries=MAX_ATTEMPTS - 1, min_backoff=1, max_backoff=10)
def noop(index: int, kind: str) -> None:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    run_job(kind, retries + 1)
