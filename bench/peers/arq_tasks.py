"""arq worker settings for the benchmark (``arq bench.peers.arq_tasks.WorkerSettings``)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq import Retry
from arq.connections import RedisSettings

from bench.jobs import MAX_ATTEMPTS, JobFailed, run_job

REDIS = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))


async def noop(ctx: dict[str, Any], index: int, kind: str) -> None:
    attempt = int(ctx["job_try"])
    try:
        run_job(kind, attempt)
    except JobFailed:
        if attempt >= MAX_ATTEMPTS:
            raise
        raise Retry(defer=0) from None


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = REDIS
    max_tries = MAX_ATTEMPTS
