"""RQ: ``queue.enqueue`` per job, ``queue.enqueue_many`` (one pipeline) batched.

Two systems: ``SimpleWorker`` (runs jobs in the worker process) and the default
``Worker`` (forks a work horse per job). N separate ``rq worker`` processes.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Measure, NotAvailable, rate, venv_bin
from bench.jobs import MAX_ATTEMPTS, kind_of
from bench.peers.base import PeerContext, drain
from bench.services import flush

BATCH = 100
QUEUE = "bench"
WORKER_CLASSES = {"rq-simple": "rq.worker.SimpleWorker", "rq-fork": "rq.worker.Worker"}


def _queue(ctx: PeerContext) -> Any:
    try:
        import redis
        from rq import Queue
    except ImportError as exc:
        raise NotAvailable(f"rq not installed ({exc})") from None
    connection = redis.Redis.from_url(ctx.redis_url("rq"))
    return Queue(QUEUE, connection=connection)


def _enqueue_many(queue: Any, indexes: range, mix: bool) -> None:
    from rq import Queue, Retry

    from bench.peers.rq_tasks import noop

    datas = []
    for i in indexes:
        kind = kind_of(i, retry_mix=mix)
        retry = Retry(max=MAX_ATTEMPTS - 1) if mix else None
        datas.append(Queue.prepare_data(noop, (i, kind), retry=retry))
    queue.enqueue_many(datas)


def enqueue(ctx: PeerContext, n: int, batched: bool) -> Measure:
    from bench.peers.rq_tasks import noop

    queue = _queue(ctx)
    flush(ctx.redis_base)
    started = time.perf_counter()
    if batched:
        for start in range(0, n, BATCH):
            _enqueue_many(queue, range(start, min(n, start + BATCH)), False)
    else:
        for index in range(n):
            queue.enqueue(noop, index, "ok")
    return {"jobs_per_s": rate(n, time.perf_counter() - started)}


def run_drain(
    ctx: PeerContext, n: int, workers: int, retry_mix: bool, *, system: str = "rq-simple"
) -> Measure:
    queue = _queue(ctx)
    flush(ctx.redis_base)

    def enqueue_all(count: int, mix: bool) -> None:
        for start in range(0, count, BATCH):
            _enqueue_many(queue, range(start, min(count, start + BATCH)), mix)

    argv = [
        venv_bin("rq"),
        "worker",
        "--url",
        ctx.redis_url("rq"),
        "--worker-class",
        WORKER_CLASSES[system],
        "--logging_level",
        "WARNING",
        QUEUE,
    ]
    return drain(
        ctx,
        name=system,
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv] * workers,
        env={},
    )
