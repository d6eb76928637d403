"""Run the benchmarks: ``python -m bench.run [--quick] [--only WORKLOAD] [--backend B]``.

Keeps the latest result of each workload: ``bench/results/<workload>.json`` (every
run of it, the medians, the machine and versions; ``bench.latest``) and
``bench/results/latest.md`` (the tables). See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.common import ROOT, Sizes
from bench.latest import save
from bench.peers.base import PeerContext
from bench.report import markdown
from bench.sections import PEERS, Run, big_log_section, ledger_systems, log_section, queue_section
from bench.services import own_redis, postgres_version, redis_version

RESULTS = ROOT / "bench" / "results"
WORKLOADS = ["append", "floor", "generate", "read", "rebuild", "verify", "audit", "enqueue",
             "drain", "retry", "peers", "ledger"]  # fmt: skip
PACKAGES = ["dramatiq", "celery", "kombu", "rq", "arq", "procrastinate", "redis", "hiredis",
            "psycopg", "sqlalchemy", "psutil"]  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, 1 repeat (< 3 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        help="run only these workloads (repeatable); 'peers'/'ledger' pick queue systems",
    )
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    parser.add_argument("--queue-repeats", type=int, help="repeats of the queue workloads only")
    parser.add_argument("--jobs", type=int, help="override N for enqueue/drain")
    parser.add_argument("--peer", action="append", help="only these peers (by system name)")
    return parser.parse_args(argv)


def machine(redis_url: str) -> dict[str, Any]:
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    total = next((line.split()[1] for line in memory.splitlines() if line.startswith("Mem:")), "?")
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "memory": f"{total} RAM",
        "python": platform.python_version(),
        "redis": redis_version(redis_url),
        "postgres": postgres_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_reference_ms": cpu_reference_ms(),
        "packages": versions,
        "commit": commit,
    }


def cpu_reference_ms(loops: int = 5_000_000) -> float:
    """Best of 3 of one fixed pure-Python loop: how fast this machine is today.

    Absolute targets (events/s) move with it between runs and days (a shared
    2-core VM here); the reference says by how much.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(loops):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeats:
        sizes.repeats = sizes.queue_repeats = args.repeats
    if args.queue_repeats:
        sizes.queue_repeats = args.queue_repeats
    if args.jobs:
        sizes.jobs = args.jobs
    started = datetime.now(UTC)
    clock = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - clock:7.1f}s] {message}", file=sys.stderr, flush=True)

    work_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    only = set(args.only) if args.only else None
    backends = args.backend or ["sqlite", "postgres"]
    run = Run(sizes, work_dir, backends, only, log)
    stem = started.strftime("%Y-%m-%dT%H%M%SZ") + ("-quick" if args.quick else "")
    partial = RESULTS / f"{stem}.json.tmp"
    RESULTS.mkdir(parents=True, exist_ok=True)
    run.on_outcome = lambda: partial.write_bytes(
        orjson.dumps([o.as_dict() for o in run.outcomes], option=orjson.OPT_INDENT_2)
    )
    try:
        with own_redis(work_dir) as redis_base:
            meta = {
                "started": started.isoformat(timespec="seconds"),
                "quick": args.quick,
                "argv": sys.argv[1:] if argv is None else argv,
                "sizes": vars(sizes),
                "backends": backends,
                "machine": machine(redis_base),
            }
            _sections(run, args, redis_base)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    meta["seconds"] = round(time.monotonic() - clock, 1)
    # other work on the machine skews every figure; ratios in one run skew least
    meta["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    written = save(meta, run.outcomes, quick=args.quick)
    partial.unlink(missing_ok=True)
    print(markdown(run.outcomes, meta))
    log("wrote " + ", ".join(str(path.relative_to(ROOT)) for path in written))
    return 0


def _sections(run: Run, args: argparse.Namespace, redis_base: str) -> None:
    for backend in run.backends:
        if run.wants("append", "floor"):
            run.log(f"== event log on {backend}")
            log_section(run, backend)
    for backend in run.backends:
        if run.wants("generate", "read", "rebuild", "verify", "audit"):
            run.log(f"== big log on {backend}")
            big_log_section(run, backend)
    if not run.wants("enqueue", "drain", "retry", "peers", "ledger"):
        return
    selected = set(args.only or [])
    system_filter = selected & {"peers", "ledger"}
    # "--only peers" alone means every queue workload on the peers only
    run.only = (selected - system_filter) or None
    systems = []
    if not system_filter or "peers" in system_filter:
        systems += [p for p in PEERS if not args.peer or p.name in args.peer]
    if not system_filter or "ledger" in system_filter:
        systems += ledger_systems(run.backends, run.work_dir)
    run.log("== queues: " + ", ".join(s.name for s in systems))
    queue_section(run, PeerContext(redis_base, run.work_dir, run.sizes, run.log), systems)


if __name__ == "__main__":
    raise SystemExit(main())
