"""Measure ``verify`` and ``events`` throughput on a generated log.

    python -m bench.audit_verify --url sqlite:////tmp/bench.db --jobs 100000 [--workers 2]

Generates ``jobs`` settlements (enqueued, attempted, completed: 3 events each) in
batches through the real store, then times ``verify_log`` and a full JSONL export.
"""

from __future__ import annotations

import argparse
import io
import time
import uuid

from ledger import migrate
from ledger.audit.export import write_jsonl
from ledger.audit.queries import EventFilters, iter_events
from ledger.audit.verify import verify_log
from ledger.db import create_engine
from ledger.events import EventType, NewEvent
from ledger.request import SettlementRequest
from ledger.store import EventStore, StreamAppend


def generate(store: EventStore, jobs: int, batch: int = 500) -> None:
    for start in range(0, jobs, batch):
        appends = []
        for n in range(start, min(start + batch, jobs)):
            request = SettlementRequest(
                user_id=f"user-{n % 1000}",
                place_id=f"place-{n % 50}",
                mission_id=f"mission-{n}",
                amount=10_000 + n,
                currency="KRW",
                idempotency_key=f"bench-{n}",
                metadata={"qr_token": f"qr-{n}", "receipt_id": f"r-{n}"},
            )
            data = {
                "request": request.as_record(),
                "fingerprint": request.fingerprint(),
                "max_attempts": 3,
                "due_at": None,
            }
            events = [
                NewEvent(EventType.ENQUEUED, data, "bench"),
                NewEvent(EventType.ATTEMPTED, {"attempt": 1, "lease_until": None}, "w"),
                NewEvent(EventType.COMPLETED, {"attempt": 1}, "w"),
            ]
            appends.append(StreamAppend(str(uuid.uuid4()), 0, events))
        store.append_many(appends)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="verify_log(workers=N)")
    args = parser.parse_args()
    if not args.skip_generate:
        migrate.upgrade(args.url)
    engine = create_engine(args.url)
    store = EventStore(engine)
    if not args.skip_generate:
        started = time.perf_counter()
        generate(store, args.jobs)
        print(f"generated {args.jobs * 3} events in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    result = verify_log(engine, workers=args.workers)
    elapsed = time.perf_counter() - started
    assert result.ok, result.problem
    print(f"verify: {result.checked} events in {elapsed:.2f}s = {result.checked / elapsed:,.0f}/s")
    started = time.perf_counter()
    count = write_jsonl(iter_events(engine, EventFilters()), io.StringIO())
    elapsed = time.perf_counter() - started
    print(f"export jsonl: {count} events in {elapsed:.2f}s = {count / elapsed:,.0f}/s")
    engine.dispose()


if __name__ == "__main__":
    main()
