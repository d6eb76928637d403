"""A big log on PostgreSQL (issue 27, item 2): what grows, and what it costs as it grows.

Generates valid job histories (``bench.generate``) into a fresh schema and stops at
each size asked (default 100,000 and 1,000,000 events) to measure, on the log as
it stands:

* the append rate at the tail: ``append_many`` of 100 new jobs per transaction
  (the workers' and batch imports' path) and single-event appends;
* audit query latency: one job's history, one user's events for a day, the
  position "as of" a random time (what every as-of read starts with), a page of
  the log after a position near the head, and the same page near the start;
* bytes per event: the table (heap), its TOAST, and each index
  (``pg_relation_size`` per ``pg_indexes`` entry), divided by the events.

    .venv/bin/python -m bench.big_log --sizes 100000 1000000

Writes ``bench/results/big_log.json``. Each measurement is short; generation is
the long part (about 30,000 events/s here).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.ceiling import LagSampler
from bench.generate import (
    START,
    USERS,
    _batches,
    _Clock,
    enqueued,
    request_record,
)
from bench.ledger_plugins import latencies
from bench.services import postgres_schema
from ledger import migrate
from ledger.audit import queries as audit_queries
from ledger.db import create_engine
from ledger.job_ids import new_job_id
from ledger.store import EventStore, StreamAppend
from tests.pg_replica import Replica, start_replica
from tests.queue_fixtures import free_port

RESULTS = Path(__file__).resolve().parent / "results"
SPAN = timedelta(days=30)
BATCH_EVENTS = 5_000
QUERIES = 200


def sizes(engine: Engine, events: int) -> dict[str, Any]:
    """Bytes of the heap, its TOAST and each index of ``events``, and per event."""
    with engine.connect() as conn:
        heap = int(conn.execute(sa.text("SELECT pg_relation_size('events')")).scalar_one())
        total = int(conn.execute(sa.text("SELECT pg_total_relation_size('events')")).scalar_one())
        indexes = {
            str(name): int(size)
            for name, size in conn.execute(
                sa.text(
                    "SELECT indexname, pg_relation_size(format('%I.%I', schemaname, indexname))"
                    " FROM pg_indexes WHERE tablename = 'events'"
                    " AND schemaname = current_schema() ORDER BY indexname"
                )
            )
        }
    toast = total - heap - sum(indexes.values())
    per = {name: round(size / events, 1) for name, size in indexes.items()}
    return {
        "heap_bytes": heap,
        "toast_and_maps_bytes": toast,
        "index_bytes": indexes,
        "total_bytes": total,
        "bytes_per_event": {
            "heap": round(heap / events, 1),
            "toast_and_maps": round(toast / events, 1),
            "indexes": per,
            "total": round(total / events, 1),
        },
    }


def append_rates(engine: Engine, clock: _Clock, rng: random.Random) -> dict[str, float]:
    """Events/s at the tail: 100-job transactions, then single-event transactions."""
    store = EventStore(engine, clock=clock)
    batches = [
        [
            StreamAppend(new_job_id(), 0, [enqueued(request_record(rng, 10**8 + n * 100 + i))])
            for i in range(100)
        ]
        for n in range(50)
    ]
    started = time.perf_counter()
    for batch in batches:
        store.append_many(batch)
    batched = 5_000 / (time.perf_counter() - started)
    singles = [
        StreamAppend(new_job_id(), 0, [enqueued(request_record(rng, 2 * 10**8 + n))])
        for n in range(500)
    ]
    started = time.perf_counter()
    for item in singles:
        store.append(item.job_id, 0, item.events)
    single = 500 / (time.perf_counter() - started)
    return {"batched_100_events_per_s": round(batched), "single_events_per_s": round(single)}


def audit_latencies(engine: Engine) -> dict[str, Any]:
    store = EventStore(engine)
    rng = random.Random(6)
    with engine.connect() as conn:
        head = int(conn.execute(sa.text("SELECT max(position) FROM events")).scalar_one())
        sample = [
            str(row[0])
            for row in conn.execute(
                sa.text("SELECT job_id FROM events WHERE position IN :p").bindparams(
                    sa.bindparam("p", expanding=True)
                ),
                {"p": [rng.randint(1, head) for _ in range(QUERIES)]},
            )
        ]

    def user_day(_index: int) -> object:
        day = START + timedelta(days=rng.randrange(SPAN.days))
        filters = audit_queries.EventFilters(
            user_id=f"user-{rng.randrange(USERS):05d}", from_time=day, to_time=day + SPAN / 30
        )
        return list(audit_queries.iter_events(engine, filters))

    def as_of(_index: int) -> object:
        return store.position_at(START + SPAN * rng.random())

    def page(after: int) -> object:
        everything = audit_queries.EventFilters()
        return audit_queries.fetch_events(engine, everything, after=after, limit=100)

    return {
        "job_history": latencies(lambda i: store.read_stream(sample[i % len(sample)]), QUERIES),
        "user_day": latencies(user_day, QUERIES),
        "as_of_position": latencies(as_of, QUERIES),
        "page_near_head": latencies(lambda _i: page(head - 1_000), QUERIES),
        "page_near_start": latencies(lambda _i: page(1_000), QUERIES),
    }


def vacuum(engine: Engine) -> None:
    """``VACUUM ANALYZE events`` (not timed): what autovacuum's insert threshold does on a
    server that runs it (off on this one); it sets the visibility map that lets the
    primary key answer ``position_at`` without heap pages (migration 0011)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE events")


def count_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def run(targets: list[int], replica: Replica | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"sizes": {}}
    with postgres_schema("biglog") as (_schema, url):
        migrate.upgrade(url)
        engine = create_engine(url)
        store_clock = _Clock()
        store = EventStore(engine, clock=store_clock)
        rng = random.Random(27)
        step = SPAN / max(1, targets[-1] // BATCH_EVENTS)
        written, seconds = 0, 0.0
        batches = _batches(rng, targets[-1], BATCH_EVENTS, store_clock)
        for target in targets:
            sampler = None if replica is None else LagSampler(replica.url_for(url), url)
            if sampler is not None:
                sampler.__enter__()
            started = time.perf_counter()
            while written < target:
                result = store.append_many(next(batches))
                written += len(result.events)
                store_clock.now += step
            seconds += time.perf_counter() - started
            if sampler is not None:
                sampler.__exit__()
            vacuum(engine)
            events = count_events(engine)
            figures = {
                "events": events,
                "generate_events_per_s": round(written / seconds),
                "append": append_rates(engine, store_clock, rng),
                "audit_ms": audit_latencies(engine),
                "replica_lag_while_generating": {} if sampler is None else sampler.figures(),
            }
            events = count_events(engine)
            figures["storage"] = sizes(engine, events)
            written = events
            results["sizes"][str(target)] = figures
            print(json.dumps({str(target): figures}, indent=1), flush=True)
        engine.dispose()
    results["measured_at"] = datetime.now(UTC).isoformat()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", default=str(RESULTS / "big_log.json"))
    parser.add_argument(
        "--replica", action="store_true", help="sample a streaming replica's lag while generating"
    )
    args = parser.parse_args()
    replica = start_replica(free_port()) if args.replica else None
    try:
        results = run(sorted(args.sizes), replica)
    finally:
        if replica is not None:
            replica.stop()
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
