"""What a single enqueue costs around the commit (issue 26, item 3), one backend at a time.

* ``ledger enqueue`` as a process: wall time of the whole command (interpreter,
  imports, connecting, one enqueue), against ``python -c pass`` and the import of
  the CLI alone; the slowest imports (``-X importtime``).
* the append lock: how long writers wait for it and hold it. The store's
  opening (``BEGIN``, the lock, the head and the look-ups: one round trip on
  PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) is timed from the call to the
  answer (*wait*: pool checkout, round trip, and the time queued behind other
  writers), and from the answer to the end of the commit (*hold*: the insert and
  the commit's flush, the part of the lock's tenure the writer itself spends).
  Measured with single ``Ledger.enqueue`` calls from 1 thread, from 32 threads
  of one process (group commit: fewer, larger commits), and from 2 processes of
  16 threads. On this 2-core machine the processes mostly measure CPU
  contention, not the lock.

    .venv/bin/python -m bench.process_costs --backend postgres
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.services import ledger_database, own_redis
from ledger.service import build_ledger
from ledger.settings import Settings
from ledger.store import EventStore
from tests.factories import request

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 3),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "mean_ms": round(1000 * statistics.fmean(ordered), 3),
    }


# -- the process ------------------------------------------------------------------


def process_costs(env: dict[str, str], runs: int) -> dict[str, Any]:
    python = sys.executable

    def wall(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), check=True, capture_output=True)
        return time.perf_counter() - started

    enqueue = [python, "-m", "ledger.cli.main", "enqueue", "--user-id", "u", "--place-id", "p"]
    enqueue += ["--mission-id", "m", "--amount", "1000", "--json"]
    figures = {
        "python_pass": _ms([wall([python, "-c", "pass"]) for _ in range(runs)]),
        "import_cli": _ms([wall([python, "-c", "import ledger.cli.main"]) for _ in range(runs)]),
        "ledger_enqueue": _ms([wall(enqueue) for _ in range(runs)]),
    }
    done = subprocess.run(
        [python, "-X", "importtime", "-c", "import ledger.cli.main"],
        env=env,
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # a top-level import (nested ones are indented)
            rows.append((int(cumulative), int(own), name.strip()))
    top = sorted(rows, reverse=True)[:12]
    figures["slowest_top_level_imports_ms"] = [(name, round(cum / 1000, 1)) for cum, _, name in top]
    return figures


# -- the append lock ----------------------------------------------------------------

_WAITS: list[float] = []
_HOLDS: list[float] = []


def _timed_opening() -> None:
    original = EventStore._opening
    if getattr(original, "timed", False):  # once per process, not once per backend
        return

    @contextmanager
    def timed(self: EventStore, **kwargs: Any) -> Iterator[Any]:
        started = time.perf_counter()
        with original(self, **kwargs) as opened:
            granted = time.perf_counter()
            yield opened
        _WAITS.append(granted - started)
        _HOLDS.append(time.perf_counter() - granted)

    timed.timed = True  # type: ignore[attr-defined]
    EventStore._opening = timed  # type: ignore[method-assign]


def _enqueue_threads(url: str, redis_url: str, threads: int, jobs: int, tag: str) -> dict[str, Any]:
    _WAITS.clear()
    _HOLDS.clear()
    ledger = build_ledger(Settings(database_url=url, redis_url=redis_url))
    try:
        requests = [request(idempotency_key=f"{tag}-{n}") for n in range(jobs)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(ledger.enqueue, requests))
        elapsed = time.perf_counter() - started
        group = ledger._group
        return {
            "jobs_per_second": round(jobs / elapsed, 1),
            "commits": len(_WAITS),
            "jobs_per_commit": round(jobs / max(len(_WAITS), 1), 2),
            "wait": _ms(_WAITS),
            "hold": _ms(_HOLDS),
            "group_batches": group.batches,
        }
    finally:
        ledger.close()


def _child(url: str, redis_url: str, threads: int, jobs: int, tag: str, out: Any) -> None:
    out.put(_enqueue_threads(url, redis_url, threads, jobs, tag))


def lock_times(url: str, redis_url: str, jobs: int) -> dict[str, Any]:
    _timed_opening()
    figures: dict[str, Any] = {
        "1 thread": _enqueue_threads(url, redis_url, 1, jobs // 4, "one"),
        "32 threads, 1 process": _enqueue_threads(url, redis_url, 32, jobs, "many"),
    }
    queue: Any = multiprocessing.get_context("fork").Queue()
    children = [
        multiprocessing.get_context("fork").Process(
            target=_child, args=(url, redis_url, 16, jobs // 2, f"proc{n}", queue)
        )
        for n in range(2)
    ]
    for child in children:
        child.start()
    parts = [queue.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=30)
    figures["16 threads x 2 processes"] = parts
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=10, help="process starts per figure")
    parser.add_argument("--jobs", type=int, default=2000, help="enqueues per lock measure")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    result: dict[str, Any] = {"workload": "process-costs", "started": stamp, "backends": {}}
    result["load_before"] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="process-costs-") as folder, ExitStack() as stack:
        redis_url = stack.enter_context(own_redis(Path(folder))) + "/5"
        for backend in args.backend or ["sqlite", "postgres"]:
            url = stack.enter_context(ledger_database(backend, Path(folder)))
            env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_REDIS_URL": redis_url}
            env["PYTHONPATH"] = str(ROOT)
            figures = {"process": process_costs(env, args.runs)}
            print(backend, json.dumps(figures["process"]))
            figures["append_lock"] = lock_times(url, redis_url, args.jobs)
            print(backend, json.dumps(figures["append_lock"]))
            result["backends"][backend] = figures
    result["load_after"] = os.getloadavg()
    name = "process_costs.json"  # the latest result: older ones are in git history
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote bench/results/{name}")


if __name__ == "__main__":
    main()
