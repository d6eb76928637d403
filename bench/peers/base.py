"""What every peer driver shares: the run context and the drain procedure.

A drain: reset the peer's store, enqueue all N jobs (bulk where the peer has
it; enqueue speed is measured separately), start the worker processes, wait
until N terminal outcomes are marked (bench/jobs.py), stop every process.

Figures: ``jobs_per_s`` (N over first to last mark: first claim to last
completion, the first no-op job finishing within a millisecond of its claim),
``wall_s`` (spawning the workers to the last mark, start-up included),
``startup_s`` (spawn to first mark), ``peak_rss_mb`` (sum over the worker
process trees, sampled every 0.25 s) and, for retry-heavy runs,
``attempts_per_s``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Children, Measure, Sizes, child_env, rate
from bench.jobs import MARKS_ENV, expected_attempts, marks_count, marks_span

#: Redis database index per peer on the harness's own redis-server
REDIS_DB = {"dramatiq": 1, "celery": 2, "rq": 3, "arq": 4, "ledger": 5}


@dataclass
class PeerContext:
    redis_base: str  # redis://127.0.0.1:PORT of the harness's own server
    work_dir: Path
    sizes: Sizes
    log: Callable[[str], None]

    def redis_url(self, peer: str) -> str:
        return f"{self.redis_base}/{REDIS_DB[peer]}"


def drain(
    ctx: PeerContext,
    *,
    name: str,
    n: int,
    retry_mix: bool,
    enqueue_all: Callable[[int, bool], None],
    worker_argvs: Sequence[Sequence[str]],
    env: dict[str, str],
) -> Measure:
    """Enqueue N jobs, start the workers, time them until N terminal outcomes."""
    marks = ctx.work_dir / f"marks-{name}-{uuid.uuid4().hex[:8]}"
    enqueue_all(n, retry_mix)
    worker_env = child_env({MARKS_ENV: str(marks), **env})
    peak = 0.0
    with Children(ctx.work_dir) as children:
        spawned = time.time()
        for argv in worker_argvs:
            children.start(argv, worker_env, name)
        deadline = time.monotonic() + ctx.sizes.drain_timeout
        next_sample = 0.0
        while marks_count(marks) < n:
            if time.monotonic() > deadline:
                done = marks_count(marks)
                raise TimeoutError(f"{name}: {done}/{n} jobs done after {ctx.sizes.drain_timeout}s")
            children.check_alive()
            if time.monotonic() >= next_sample:
                peak = max(peak, children.peak_rss_sample())
                next_sample = time.monotonic() + 0.25
            time.sleep(0.005)
        peak = max(peak, children.peak_rss_sample())
    first, last = marks_span(marks)
    marks.unlink(missing_ok=True)
    figures: Measure = {
        "jobs_per_s": rate(n, last - first),
        "wall_s": last - spawned,
        # what a user waits for: from starting the workers to the last outcome
        "wall_jobs_per_s": rate(n, last - spawned),
        "startup_s": first - spawned,
        "peak_rss_mb": peak,
    }
    if retry_mix:
        figures["attempts_per_s"] = rate(expected_attempts(n, retry_mix=True), last - first)
    return figures
