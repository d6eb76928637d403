"""The ledger's side of each workload: the same calls a service, a worker and an auditor make.

Enqueue goes through ``Ledger.enqueue`` / ``Ledger.enqueue_many``, the drain
through ``ledger worker`` processes running bench/ledger_handler.py, rebuild
and verify in a child process (bench/child.py, for a clean peak RSS), and the
audit queries through ``EventStore.read_stream``, ``projections.queries`` and
``ledger.audit.queries``.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import orjson
import sqlalchemy as sa

from bench.common import Measure, child_env, rate
from bench.generate import START, request_record
from bench.jobs import MAX_ATTEMPTS, kind_of
from bench.peers.base import PeerContext, drain
from ledger.audit import queries as audit_queries
from ledger.db import create_engine
from ledger.request import SettlementRequest
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from ledger.store import EventStore
from projections import queries

BATCH = 100


# -- queue workloads ------------------------------------------------------------


def _settings_env(ctx: PeerContext, url: str, queue: str) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": url,
        "LEDGER_REDIS_URL": ctx.redis_url("ledger"),
        "LEDGER_QUEUE_NAME": queue,
        # retries after ~1 ms, like the peers' retry-heavy settings
        "LEDGER_RETRY_BASE_SECONDS": "0.001",
        "LEDGER_RETRY_CAP_SECONDS": "0.01",
    }


def _build(ctx: PeerContext, url: str, queue: str) -> Ledger:
    env = _settings_env(ctx, url, queue)
    return build_ledger(
        Settings(
            database_url=url,
            redis_url=env["LEDGER_REDIS_URL"],
            queue_name=queue,
            retry_base_seconds=0.001,
            retry_cap_seconds=0.01,
        )
    )


def _requests(n: int, retry_mix: bool) -> list[SettlementRequest]:
    rng = random.Random(20)
    requests = []
    for index in range(n):
        record = request_record(rng, index)
        record["metadata"] = {
            **record["metadata"],
            "bench_kind": kind_of(index, retry_mix=retry_mix),
        }
        requests.append(SettlementRequest(**record))
    return requests


def _enqueue_all(ledger: Ledger, requests: list[SettlementRequest], batched: bool) -> None:
    if not batched:
        for request in requests:
            ledger.enqueue(request, max_attempts=MAX_ATTEMPTS)
        return
    for start in range(0, len(requests), BATCH):
        ledger.enqueue_many(requests[start : start + BATCH], max_attempts=MAX_ATTEMPTS)


def ledger_enqueue(ctx: PeerContext, url: str, n: int, batched: bool) -> Measure:
    """Enqueue through the Ledger service (SQL log, then the Redis hot queue)."""
    requests = _requests(n, retry_mix=False)
    ledger = _build(ctx, url, f"b{uuid.uuid4().hex[:8]}")
    try:
        started = time.perf_counter()
        _enqueue_all(ledger, requests, batched)
        seconds = time.perf_counter() - started
    finally:
        ledger.close()
    return {"jobs_per_s": rate(n, seconds)}


def _count(url: str, query: str, **params: object) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar_one())
    finally:
        engine.dispose()


def _log_size(url: str) -> int:
    return _count(url, "SELECT count(*) FROM events")


def _terminal_events_after(url: str, position: int) -> int:
    return _count(
        url,
        "SELECT count(*) FROM events WHERE position > :after"
        " AND type IN ('completed', 'dead_lettered')",
        after=position,
    )


def ledger_drain(
    ctx: PeerContext,
    url: str,
    n: int,
    workers: int,
    retry_mix: bool,
    *,
    name: str,
    prefetch: int | None = None,
) -> Measure:
    """N jobs through ``ledger worker`` processes; also events/s written by the workers.

    8 handler threads like Dramatiq's default; ``prefetch`` None runs the
    worker's own default (what a user gets with ``--concurrency 8`` alone).
    """
    queue = f"b{uuid.uuid4().hex[:8]}"
    requests = _requests(n, retry_mix)
    before: list[int] = []

    def enqueue_all(_count: int, _mix: bool) -> None:
        ledger = _build(ctx, url, queue)
        try:
            _enqueue_all(ledger, requests, batched=True)
        finally:
            ledger.close()
        before.append(_log_size(url))

    argv = [
        sys.executable,
        "-m",
        "ledger.cli.main",
        "worker",
        "--handler",
        "bench.ledger_handler:noop",
        "--concurrency",
        "8",
        *(["--prefetch", str(prefetch)] if prefetch is not None else []),
    ]
    figures = drain(
        ctx,
        name=name,
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv] * workers,
        env=_settings_env(ctx, url, queue),
    )
    finished = _terminal_events_after(url, before[0])
    if finished != n:  # the figure counts only if the log holds every outcome once
        raise RuntimeError(f"the log holds {finished} terminal outcomes for {n} jobs")
    written = _log_size(url) - before[0]
    span = n / figures["jobs_per_s"]
    figures["events_per_s"] = rate(written, span)
    return figures


# -- rebuild and verify, in a child process -------------------------------------


def run_child(workload: str, url: str) -> Measure:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", workload, url],
        env=child_env({}),
        capture_output=True,
        timeout=1800,
        check=False,
    )
    lines = proc.stdout.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"bench.child {workload} failed: {proc.stderr.decode()[-2000:]}")
    out = orjson.loads(lines[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"bench.child {workload} exited {proc.returncode}")
    figures = {
        "events_per_s": rate(out["events"], out["seconds"]),
        "events": float(out["events"]),
        "peak_rss_mb": float(out["peak_rss_mb"]),
    }
    if "workers_peak_rss_mb" in out:
        figures["workers_peak_rss_mb"] = float(out["workers_peak_rss_mb"])
    return figures


def rebuild(url: str) -> Measure:
    return run_child("rebuild", url)


def verify(url: str) -> Measure:
    return run_child("verify", url)


def verify_2(url: str) -> Measure:
    """``verify_log(engine, workers=2)``: ranges of the log over 2 worker processes."""
    return run_child("verify-2", url)


# -- audit query latencies ------------------------------------------------------


def latencies(call: Callable[[int], object], count: int) -> Measure:
    """p50/p99 (ms) of ``count`` calls (each gets its index); one warm-up call first."""
    call(-1)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        call(index)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return {"p50_ms": statistics.median(samples), "p99_ms": p99, "queries": float(count)}


def _sample_job_ids(engine: sa.Engine, count: int) -> list[str]:
    with engine.connect() as conn:
        head = int(conn.execute(sa.text("SELECT max(position) FROM events")).scalar_one())
        rng = random.Random(5)
        positions = [rng.randint(1, head) for _ in range(count + 1)]
        rows = conn.execute(
            sa.text("SELECT job_id FROM events WHERE position IN :p").bindparams(
                sa.bindparam("p", expanding=True)
            ),
            {"p": positions},
        )
        return [row.job_id for row in rows]


def audit_job_history(url: str, count: int) -> Measure:
    """One job's full history (``EventStore.read_stream``)."""
    engine = create_engine(url)
    try:
        store = EventStore(engine)
        job_ids = _sample_job_ids(engine, count)
        return latencies(lambda i: store.read_stream(job_ids[i % len(job_ids)]), count)
    finally:
        engine.dispose()


def audit_dlq_page(url: str, count: int) -> Measure:
    """The first page of the DLQ view; needs the projections rebuilt first."""
    engine = create_engine(url)
    try:
        return latencies(lambda _i: queries.dlq_page(engine, 0, 49), count)
    finally:
        engine.dispose()


def audit_totals_per_day(url: str, count: int) -> Measure:
    """Completed totals per currency per day over the whole log."""
    engine = create_engine(url)
    try:
        return latencies(lambda _i: queries.totals(engine, group_by=("day",)), count)
    finally:
        engine.dispose()


def audit_user_day(url: str, count: int, days: int = 30) -> Measure:
    """One user's events for one day (``ledger.audit.queries``)."""
    rng = random.Random(6)
    engine = create_engine(url)

    def one(_index: int) -> object:
        day = START + timedelta(days=rng.randrange(days))
        filters = audit_queries.EventFilters(
            user_id=f"user-{rng.randrange(10_000):05d}",
            from_time=day,
            to_time=day + timedelta(days=1),
        )
        return list(audit_queries.iter_events(engine, filters))

    try:
        return latencies(one, count)
    finally:
        engine.dispose()
