"""The script API's read rate against ``ledger events --format jsonl``, on the same log.

    python -m bench.scripts_api [--events 1000000] [--rounds 3] [--backend sqlite|postgres]

Generates a valid log of ``--events`` events (bench/generate.py; or reuse one
with ``--url``), then runs, interleaved in the same run (API, CLI, CLI, API,
…, so that the load of a busy machine falls on both alike), a child process
per measurement:

* ``api``: ``ledger.scripts.connect(url)`` then every event of
  ``log.events()`` (typed ``StoredEvent``s, pages of 2,000);
* ``cli``: the ``ledger events --format jsonl`` command itself (the Typer
  app, in the child), its output written to /dev/null.

Each child starts its clock after its imports and connection (start-up
excluded) and stops it after the last event; it samples its resident memory
every 100,000 events (flat memory: the last sample against the first) and
reports its peak (``VmHWM``). The figure is the ratio of the medians of the
rates (events/s): the API's over the CLI's (goal: at least 0.70).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.generate import generate
from ledger import migrate
from ledger.cli.main import app
from ledger.db import create_engine
from ledger.scripts import connect
from ledger.store import EventStore

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 100_000
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child_api(url: str) -> dict[str, Any]:
    samples: list[int] = []
    count = 0
    with connect(url) as log:
        started = time.perf_counter()
        for _event in log.events():
            count += 1
            if count % SAMPLE_EVERY == 0:
                samples.append(_status("VmRSS"))
        seconds = time.perf_counter() - started
    return {"events": count, "seconds": seconds, "rss_kb": samples, "peak_kb": _status("VmHWM")}


def child_cli(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    count = EventStore(engine).head().position
    engine.dispose()
    os.environ["LEDGER_DATABASE_URL"] = url
    real_stdout = sys.stdout
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sys.stdout = devnull
        try:
            started = time.perf_counter()
            app(args=["events", "--format", "jsonl"], prog_name="ledger", standalone_mode=False)
            seconds = time.perf_counter() - started
        finally:
            sys.stdout = real_stdout
    return {"events": count, "seconds": seconds, "rss_kb": [], "peak_kb": _status("VmHWM")}


def measure(kind: str, url: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.scripts_api", "--child", kind, "--url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["rate"] = figures["events"] / figures["seconds"]
    return figures


@contextlib.contextmanager
def log_url(args: argparse.Namespace) -> Iterator[str]:
    """The log to read: ``--url`` as it is, or a fresh one of ``--events`` events."""
    if args.url:
        yield args.url
        return
    if args.backend == "postgres":
        schema = f"bench_scripts_{os.getpid()}"
        admin = create_engine(POSTGRES)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        try:
            yield _fill(url, args.events)
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="bench-scripts-") as directory:
        yield _fill(f"sqlite:///{directory}/ledger.db", args.events)


def _fill(url: str, events: int) -> str:
    migrate.upgrade(url)
    engine = create_engine(url, sqlite_synchronous="OFF")
    try:
        made = generate(engine, events)
    finally:
        engine.dispose()
    print(f"generated {made.events} events in {made.seconds:.1f} s", file=sys.stderr)
    return url


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"api": [], "cli": []}
    with log_url(args) as url:
        for number in range(args.rounds):
            order = ("api", "cli") if number % 2 == 0 else ("cli", "api")
            for kind in order:
                figures = measure(kind, url)
                runs[kind].append(figures)
                print(
                    f"round {number + 1} {kind}: {figures['events']} events in "
                    f"{figures['seconds']:.2f} s = {figures['rate']:,.0f}/s, peak "
                    f"{figures['peak_kb'] / 1024:.0f} MiB",
                    file=sys.stderr,
                )
    api = statistics.median(r["rate"] for r in runs["api"])
    cli = statistics.median(r["rate"] for r in runs["cli"])
    samples = [r["rss_kb"] for r in runs["api"] if r["rss_kb"]]
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ"),
        "backend": args.backend if not args.url else "given",
        "events": runs["api"][0]["events"],
        "rounds": args.rounds,
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "api_rate": api,
        "cli_rate": cli,
        "ratio": api / cli,
        "api_rss_first_last_kb": [[s[0], s[-1]] for s in samples],
        "api_peak_kb": max(r["peak_kb"] for r in runs["api"]),
        "cli_peak_kb": max(r["peak_kb"] for r in runs["cli"]),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--url", help="Read this log instead of generating one.")
    parser.add_argument("--child", choices=("api", "cli"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        figures = (child_api if args.child == "api" else child_cli)(args.url)
        print(json.dumps(figures))
        return 0
    report = run(args)
    out = ROOT / "bench" / "results" / f"scripts_api-{report['backend']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{report['events']} events, {args.rounds} rounds interleaved: API "
        f"{report['api_rate']:,.0f}/s, `ledger events --format jsonl` {report['cli_rate']:,.0f}/s, "
        f"ratio {report['ratio']:.2f}; API RSS first/last sample (KiB) "
        f"{report['api_rss_first_last_kb']}, peak API {report['api_peak_kb'] / 1024:.0f} MiB, "
        f"CLI {report['cli_peak_kb'] / 1024:.0f} MiB; load average {report['loadavg']} -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
