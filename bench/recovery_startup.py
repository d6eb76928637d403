"""Worker start-up as the log grows: the recovery's walk against its checkpoint (issue 26).

For each size: a log of N events of finished jobs (``bench/generate.py`` with
every job completed) plus 1,000 waiting jobs, then three recoveries, each by a
fresh ``Ledger`` on its own Redis queue (what a worker does at start): the
first walks the log (no checkpoint yet), the next two read the checkpoint and
the log after it. A flat start-up is the same time at every N.

    .venv/bin/python -m bench.recovery_startup --backend postgres --events 100000 --events 500000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.generate as generate
from bench.services import ledger_database, own_redis
from ledger.db import create_engine
from ledger.request import SettlementRequest
from ledger.service import build_ledger
from ledger.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
LIVE = 1000


def measure(backend: str, events: int, work: Path) -> dict[str, Any]:
    generate.MIX = (("completed", 1.0),)  # only finished jobs in the generated history
    with own_redis(work) as redis_url, ledger_database(backend, work) as url:
        engine = create_engine(url)
        generate.generate(engine, events)
        engine.dispose()
        ledger = build_ledger(Settings(database_url=url, redis_url=f"{redis_url}/5"))
        requests = [
            SettlementRequest(
                user_id="u", place_id="p", mission_id="m", amount=1000, idempotency_key=f"live{n}"
            )
            for n in range(LIVE)
        ]
        for start in range(0, LIVE, 100):
            ledger.enqueue_many(requests[start : start + 100])
        ledger.close()
        seconds = []
        for attempt in range(3):
            settings = Settings(
                database_url=url, redis_url=f"{redis_url}/5", queue_name=f"q{attempt}"
            )
            ledger = build_ledger(settings)
            started = time.perf_counter()
            report = ledger.recover()
            seconds.append(round(time.perf_counter() - started, 3))
            ledger.close()
    return {"backend": backend, "events": events, "live": report.live, "recover_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--events", action="append", type=int)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="recovery-startup-") as folder:
        for backend in args.backend or ["sqlite", "postgres"]:
            for events in args.events or [100_000, 500_000]:
                rows.append(measure(backend, events, Path(folder)))
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "workload": "recovery-startup",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    (RESULTS / "recovery_startup.json").write_text(json.dumps(result, indent=2) + "\n")
    print("wrote bench/results/recovery_startup.json")


if __name__ == "__main__":
    main()
