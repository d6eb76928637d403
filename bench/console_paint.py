"""First paint of the operator console's dashboard on a big log.

    python -m bench.console_paint [--jobs 100000] [--runs 15]

Generates about ``jobs`` job histories (``bench.generate``: valid lifecycles, most
completed, some dead-lettered or waiting; ~3.3 events a job) in a fresh PostgreSQL
schema, folds the projections, starts ``ledger serve`` on it (its own redis-server)
and measures, signed in as an operator:

* ``server_ms``: ``GET /`` answered whole (the page is rendered on the server), from
  this process over loopback (and ``GET /jobs?status=dead``, a filtered, counted list);
* ``first_paint_ms``: Debian's Chromium (Playwright) loading ``/``: the page's own
  ``first-contentful-paint`` (navigation start to the first text or image painted).

Medians and the worst of ``runs`` each; the goal is first paint under 300 ms. Writes
``bench/results/console_paint.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.generate import generate
from bench.services import own_redis, postgres_schema
from ledger import migrate
from ledger.db import create_engine
from ledger.log_reader import LogReader
from projections.runner import Projector

RESULTS = Path(__file__).parent / "results" / "console_paint.json"
OPERATOR = "operator-token-0123456789"
TOKENS = f"operator:{OPERATOR},auditor:auditor-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
EVENTS_PER_JOB = 3.3
#: the page's first contentful paint (waits for it: it may come after ``load``)
PAINT = """() => new Promise(resolve => new PerformanceObserver((list, observer) => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) { observer.disconnect(); resolve(entry.startTime); }
}).observe({type: 'paint', buffered: true}))"""


def serve(url: str, redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_REDIS_URL": redis_url,
        "LEDGER_API_TOKENS": TOKENS,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("ledger serve did not start: " + log.read_text())


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 1),
        "max": round(max(samples), 1),
        "min": round(min(samples), 1),
    }


def measure_server(base: str, runs: int, path: str = "/") -> list[float]:
    with httpx.Client(base_url=base) as client:
        signed = client.post("/sign-in", data={"token": OPERATOR}, follow_redirects=False)
        if signed.headers.get("location") != "/":
            raise RuntimeError(f"sign-in refused: {signed.status_code}")
        client.get(path).raise_for_status()  # warm: templates compiled, connections open
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure_browser(base: str, runs: int) -> list[float]:
    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_context(base_url=base).new_page()
        page.goto("/sign-in")
        page.fill("#token", OPERATOR)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for _ in range(runs):
            page.goto("/", wait_until="load")
            paint = page.evaluate(PAINT)
            samples.append(float(paint))
        browser.close()
    return samples


def run(jobs: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work, postgres_schema("console") as (_schema, url):
        folder = Path(work)
        migrate.upgrade(url)
        engine = create_engine(url)
        generated = generate(engine, int(jobs * EVENTS_PER_JOB))
        started = time.perf_counter()
        Projector(LogReader(engine)).catch_up()
        fold_s = time.perf_counter() - started
        engine.dispose()
        with own_redis(folder) as redis_url:
            port = 8000 + os.getpid() % 1000
            process = serve(url, redis_url, port, folder / "serve.log")
            try:
                base = f"http://127.0.0.1:{port}"
                server = measure_server(base, runs)
                jobs_page = measure_server(base, runs, "/jobs?status=dead")
                paint = measure_browser(base, runs)
            finally:
                process.terminate()
                process.wait(10)
    return {
        "jobs": generated.jobs,
        "events": generated.events,
        "projections_fold_s": round(fold_s, 1),
        "server_ms": summary(server),
        "jobs_page_dead_server_ms": summary(jobs_page),
        "first_paint_ms": summary(paint),
        "goal_first_paint_ms": 300,
        "runs": runs,
        "measured_at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures = run(args.jobs, args.runs)
    print(json.dumps(figures, indent=1))
    RESULTS.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
