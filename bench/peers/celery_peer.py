"""Celery with the Redis broker: ``task.delay`` per job, ``group(...).apply_async()`` batched."""

from __future__ import annotations

import os
import time
from types import ModuleType

from bench.common import Measure, NotAvailable, rate, venv_bin
from bench.jobs import kind_of
from bench.peers.base import PeerContext, drain
from bench.services import flush

BATCH = 100


def _tasks(ctx: PeerContext) -> ModuleType:
    os.environ["BENCH_REDIS_URL"] = ctx.redis_url("celery")
    try:
        from bench.peers import celery_tasks
    except ImportError as exc:
        raise NotAvailable(f"celery not installed ({exc})") from None
    return celery_tasks


def _send_group(tasks: ModuleType, indexes: range, mix: bool) -> None:
    from celery import group

    group(tasks.noop.s(i, kind_of(i, retry_mix=mix)) for i in indexes).apply_async()


def enqueue(ctx: PeerContext, n: int, batched: bool) -> Measure:
    tasks = _tasks(ctx)
    flush(ctx.redis_base)
    started = time.perf_counter()
    if batched:
        for start in range(0, n, BATCH):
            _send_group(tasks, range(start, min(n, start + BATCH)), False)
    else:
        for index in range(n):
            tasks.noop.delay(index, "ok")
    return {"jobs_per_s": rate(n, time.perf_counter() - started)}


def run_drain(ctx: PeerContext, n: int, workers: int, retry_mix: bool) -> Measure:
    tasks = _tasks(ctx)
    flush(ctx.redis_base)

    def enqueue_all(count: int, mix: bool) -> None:
        for start in range(0, count, BATCH):
            _send_group(tasks, range(start, min(count, start + BATCH)), mix)

    # the default prefork pool with N child processes; gossip/mingle/heartbeat off
    # (the usual settings for a single-host worker; they only slow start-up)
    argv = [
        venv_bin("celery"),
        "-A",
        "bench.peers.celery_tasks",
        "worker",
        "--concurrency",
        str(workers),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    env = {"BENCH_REDIS_URL": ctx.redis_url("celery")}
    return drain(
        ctx,
        name="celery",
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv],
        env=env,
    )
