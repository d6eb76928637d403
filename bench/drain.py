"""Quick drain: enqueue N no-op jobs, run `ledger worker --burst` processes, report jobs/s.

    python bench/drain.py --jobs 5000 --workers 1 --concurrency 16 \
        [--database-url postgresql://…] [--redis-url redis://…]

Throughput is counted from the log: first ``enqueued`` to last ``completed``
(enqueue runs first, then the workers drain). Not a test: no assertions on speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from ledger import migrate
from ledger.db import create_engine
from ledger.request import SettlementRequest
from ledger.service import build_ledger
from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    migrate.upgrade(url)
    queue = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=url, redis_url=args.redis_url, queue_name=queue)
    ledger = build_ledger(settings)
    started = time.perf_counter()
    for n in range(args.jobs):
        ledger.enqueue(
            SettlementRequest(
                user_id="u",
                place_id="p",
                mission_id="m",
                amount=10_000,
                idempotency_key=f"{queue}-{n}",
            )
        )
    enqueued = time.perf_counter() - started
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEDGER_DATABASE_URL": url,
        "LEDGER_QUEUE_NAME": queue,
    }
    if args.redis_url:
        env["LEDGER_REDIS_URL"] = args.redis_url
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.cli.main",
                "worker",
                "--burst",
                "--handler",
                "bench.drain:noop",
                "--concurrency",
                str(args.concurrency),
                *(["--prefetch", str(args.prefetch)] if args.prefetch is not None else []),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.wait()
    drained = time.perf_counter() - started
    engine = create_engine(url)
    with engine.connect() as conn:
        done = conn.execute(sa.text("SELECT count(*) FROM events WHERE type='completed'")).scalar()
    print(
        f"{url.split(':')[0]} redis={'real' if args.redis_url else 'embedded'} "
        f"workers={args.workers} c={args.concurrency} jobs={args.jobs} completed={done} "
        f"enqueue {args.jobs / enqueued:.0f}/s, drain {args.jobs / drained:.0f}/s (incl. start-up)"
    )
    ledger.close()


def noop(job: object) -> None:
    """The benchmark handler: does nothing."""


if __name__ == "__main__":
    main()
