"""arq: ``await pool.enqueue_job`` per job; it has no bulk API, so "batched" is
100 concurrent ``enqueue_job`` calls (``asyncio.gather``). N ``arq`` worker processes
(default ``max_jobs=10`` concurrent jobs each)."""

from __future__ import annotations

import asyncio
import os
import time

from bench.common import Measure, NotAvailable, rate, venv_bin
from bench.jobs import kind_of
from bench.peers.base import PeerContext, drain
from bench.services import flush

BATCH = 100


def _settings(ctx: PeerContext) -> object:
    os.environ["BENCH_REDIS_URL"] = ctx.redis_url("arq")
    try:
        from arq.connections import RedisSettings
    except ImportError as exc:
        raise NotAvailable(f"arq not installed ({exc})") from None
    return RedisSettings.from_dsn(ctx.redis_url("arq"))


async def _enqueue(settings: object, n: int, batched: bool, mix: bool) -> float:
    from arq import create_pool

    pool = await create_pool(settings)  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        if batched:
            for start in range(0, n, BATCH):
                await asyncio.gather(
                    *(
                        pool.enqueue_job("noop", i, kind_of(i, retry_mix=mix))
                        for i in range(start, min(n, start + BATCH))
                    )
                )
        else:
            for index in range(n):
                await pool.enqueue_job("noop", index, kind_of(index, retry_mix=mix))
        return time.perf_counter() - started
    finally:
        await pool.aclose()


def enqueue(ctx: PeerContext, n: int, batched: bool) -> Measure:
    settings = _settings(ctx)
    flush(ctx.redis_base)
    seconds = asyncio.run(_enqueue(settings, n, batched, False))
    return {"jobs_per_s": rate(n, seconds)}


def run_drain(ctx: PeerContext, n: int, workers: int, retry_mix: bool) -> Measure:
    settings = _settings(ctx)
    flush(ctx.redis_base)

    def enqueue_all(count: int, mix: bool) -> None:
        asyncio.run(_enqueue(settings, count, True, mix))

    argv = [venv_bin("arq"), "bench.peers.arq_tasks.WorkerSettings"]
    return drain(
        ctx,
        name="arq",
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv] * workers,
        env={"BENCH_REDIS_URL": ctx.redis_url("arq")},
    )
