"""Dramatiq with its Redis broker: ``actor.send`` per job; no bulk enqueue API."""

from __future__ import annotations

import os
import time
from types import ModuleType

from bench.common import Measure, NotAvailable, rate, venv_bin
from bench.jobs import kind_of
from bench.peers.base import PeerContext, drain
from bench.services import flush


def _tasks(ctx: PeerContext) -> ModuleType:
    os.environ["BENCH_REDIS_URL"] = ctx.redis_url("dramatiq")
    try:
        from bench.peers import dramatiq_tasks
    except ImportError as exc:
        raise NotAvailable(f"dramatiq not installed ({exc})") from None
    return dramatiq_tasks


def enqueue(ctx: PeerContext, n: int, batched: bool) -> Measure:
    if batched:
        raise NotAvailable("dramatiq has no bulk enqueue (group() sends one by one)")
    tasks = _tasks(ctx)
    flush(ctx.redis_base)
    started = time.perf_counter()
    for index in range(n):
        tasks.noop.send(index, "ok")
    return {"jobs_per_s": rate(n, time.perf_counter() - started)}


def run_drain(ctx: PeerContext, n: int, workers: int, retry_mix: bool) -> Measure:
    tasks = _tasks(ctx)
    flush(ctx.redis_base)

    def enqueue_all(count: int, mix: bool) -> None:
        for index in range(count):
            tasks.noop.send(index, kind_of(index, retry_mix=mix))

    # one dramatiq command with --processes N (its default 8 threads per process)
    argv = [venv_bin("dramatiq"), "bench.peers.dramatiq_tasks", "--processes", str(workers)]
    env = {"BENCH_REDIS_URL": ctx.redis_url("dramatiq")}
    return drain(
        ctx,
        name="dramatiq",
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv],
        env=env,
    )
