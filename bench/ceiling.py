"""The append path's ceiling (issue 27, item 5): 1, 2 and 4 worker processes, one PostgreSQL.

For each hot queue (one private redis-server; a private local Redis Cluster of 3
masters + 3 replicas, ``tests/redis_cluster.py``) and each number of worker
processes, N no-op jobs are enqueued first (``enqueue_many``), then
``ledger worker --burst`` processes drain them. Reported per run:

* jobs/s from the log: first ``attempted`` to last ``completed`` (start-up excluded);
* the append lock, from inside the workers (``bench.timed_worker`` times the
  store's opening as ``bench.process_costs`` does): *wait* (call to lock granted:
  pool checkout, the round trip, time queued behind other writers) and *hold*
  (granted to commit), p50/p99 ms, commits, jobs per commit, and the lock's
  **utilisation**: the sum of holds over the drain's duration (1.0 = the lock is
  never free: saturated);
* events/s appended.

    .venv/bin/python -m bench.ceiling --jobs 4000 --procs 1 2 4

Writes ``bench/results/ceiling.json``. On a 2-core machine shared with other work,
4 processes measure CPU contention as much as the lock: read the utilisation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.services import own_redis, postgres_schema
from ledger import migrate
from ledger.db import create_engine
from ledger.replica import replica_lag
from ledger.service import build_ledger
from ledger.settings import Settings
from tests.factories import request
from tests.pg_replica import Replica, start_replica
from tests.queue_fixtures import free_port
from tests.redis_cluster import start_cluster

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@contextmanager
def hot_queues(work: Path, which: list[str]) -> Iterator[dict[str, tuple[str, bool]]]:
    """name -> (Redis URL, is a cluster)."""
    found: dict[str, tuple[str, bool]] = {}
    cluster = None
    with own_redis(work) as url:
        if "redis" in which:
            found["redis"] = (url, False)
        if "cluster" in which:
            (work / "cluster").mkdir()
            cluster = start_cluster(work / "cluster")
            found["cluster"] = (cluster.url, True)
        try:
            yield found
        finally:
            if cluster is not None:
                cluster.stop()


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered) * 1000, 2),
        "p99": round(p99 * 1000, 2),
        "mean": round(statistics.fmean(ordered) * 1000, 2),
    }


class LagSampler:
    """Samples a streaming replica's lag every 50 ms while a drain runs."""

    def __init__(self, replica_url: str, primary_url: str) -> None:
        self.replica = create_engine(replica_url)
        self.primary = create_engine(primary_url)
        self.bytes: list[int] = []
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            lag = replica_lag(self.replica, self.primary)
            if lag is not None and lag.bytes_behind is not None:
                self.bytes.append(lag.bytes_behind)
                self.seconds.append(lag.seconds_since_replay or 0.0)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.replica.dispose()
        self.primary.dispose()

    def figures(self) -> dict[str, Any]:
        if not self.bytes:
            return {}
        ordered = sorted(self.bytes)
        return {
            "samples": len(ordered),
            "bytes_behind_p50": ordered[len(ordered) // 2],
            "bytes_behind_max": ordered[-1],
            "seconds_since_replay_max": round(max(self.seconds), 3),
        }


def drain(
    url: str,
    redis_url: str,
    cluster: bool,
    procs: int,
    jobs: int,
    work: Path,
    replica: Replica | None = None,
) -> dict[str, Any]:
    queue = f"ceil{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=url, redis_url=redis_url, redis_cluster=cluster, queue_name=queue
    )
    ledger = build_ledger(settings)
    try:
        for start in range(0, jobs, 500):
            ledger.enqueue_many(
                [
                    request(idempotency_key=f"{queue}-{n}")
                    for n in range(start, min(jobs, start + 500))
                ]
            )
    finally:
        ledger.close()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEDGER_DATABASE_URL": url,
        "LEDGER_REDIS_URL": redis_url,
        "LEDGER_REDIS_CLUSTER": "true" if cluster else "false",
        "LEDGER_QUEUE_NAME": queue,
    }
    outs = [work / f"{queue}-{n}.json" for n in range(procs)]
    sampler = None if replica is None else LagSampler(replica.url_for(url), url)
    if sampler is not None:
        sampler.__enter__()
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [
                sys.executable, "-m", "bench.timed_worker", str(out),
                "worker", "--burst", "--handler", "bench.drain:noop", "--concurrency", "8",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,
        )
        for out in outs
    ]  # fmt: skip
    for child in children:
        child.wait(timeout=600)
    wall = time.perf_counter() - started
    if sampler is not None:
        sampler.__exit__()
    waits: list[float] = []
    holds: list[float] = []
    for out in outs:
        timed = json.loads(out.read_text())
        waits += timed["waits"]
        holds += timed["holds"]
    engine = create_engine(url)
    with engine.connect() as conn:
        first, last, done, appended = conn.execute(
            sa.text(
                "SELECT min(occurred_at) FILTER (WHERE type = 'attempted'),"
                " max(occurred_at) FILTER (WHERE type = 'completed'),"
                " count(*) FILTER (WHERE type = 'completed'),"
                " count(*) FILTER (WHERE type IN ('attempted', 'completed'))"
                " FROM events WHERE job_id IN (SELECT job_id FROM events"
                " WHERE idempotency_key LIKE :prefix)"
            ),
            {"prefix": f"{queue}-%"},
        ).one()
    engine.dispose()
    seconds = max((last - first).total_seconds(), 1e-6)
    return {
        "procs": procs,
        "jobs": jobs,
        "completed": int(done),
        "jobs_per_s": round(done / seconds),
        "events_per_s": round(appended / seconds),
        "wall_s_with_start_up": round(wall, 2),
        "commits": len(holds),
        "jobs_per_commit": round(done / max(len(holds), 1), 1),
        "lock_wait_ms": _ms(waits),
        "lock_hold_ms": _ms(holds),
        "lock_utilisation": round(sum(holds) / seconds, 2),
        "replica_lag": {} if sampler is None else sampler.figures(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queues", nargs="+", default=["redis", "cluster"])
    parser.add_argument("--out", default=str(RESULTS / "ceiling.json"))
    parser.add_argument(
        "--replica", action="store_true", help="sample a streaming replica's lag during drains"
    )
    args = parser.parse_args()
    replica = start_replica(free_port()) if args.replica else None
    runs: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="ceiling-"))
    with hot_queues(work, args.queues) as queues, postgres_schema("ceiling") as (_s, url):
        migrate.upgrade(url)
        for procs in args.procs:
            for name, (redis_url, cluster) in queues.items():
                figures = {
                    "queue": name,
                    **drain(url, redis_url, cluster, procs, args.jobs, work, replica),
                }
                print(json.dumps(figures), flush=True)
                runs.append(figures)
    if replica is not None:
        replica.stop()
    result = {
        "measured_at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
