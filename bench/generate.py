"""Generate a large, valid event log fast: whole job histories through ``append_many``.

Every job's history is a legal path of the lifecycle (most jobs enqueued →
attempted → completed; some retried then completed; some dead-lettered after
``max_attempts``; a few still waiting or processing). Each ``append_many`` call
writes thousands of events in one transaction, through the real store (so
positions, versions and the hash chain are exactly what the ledger writes).
An injected clock spreads the log over ``span`` (for per-day audit queries).

Deterministic for a given seed.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from ledger.events import EventType, NewEvent, StoredEvent, format_time
from ledger.job_ids import RANDOM_BITS, job_id_at
from ledger.lifecycle import fold
from ledger.request import canonical_json
from ledger.store import EventStore, StreamAppend

START = datetime(2026, 1, 1, tzinfo=UTC)
USERS = 10_000
PLACES = 500
MISSIONS = 50
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=30)
#: (kind, cumulative probability)
MIX = (
    ("completed", 0.85),
    ("retried", 0.93),
    ("dead", 0.95),
    ("waiting", 0.98),
    ("processing", 1.0),
)


def request_record(rng: random.Random, index: int) -> dict[str, Any]:
    """A settlement request as the ``enqueued`` event stores it."""
    usd = rng.random() < 0.1
    return {
        "user_id": f"user-{rng.randrange(USERS):05d}",
        "place_id": f"place-{rng.randrange(PLACES):04d}",
        "mission_id": f"mission-{rng.randrange(MISSIONS):03d}",
        "amount": rng.randrange(100, 50_000) if usd else rng.randrange(1, 200) * 100,
        "currency": "USD" if usd else "KRW",
        "idempotency_key": f"scan-{index:09d}-{rng.getrandbits(32):08x}",
        "metadata": {"qr_token": f"qr-{rng.getrandbits(48):012x}", "receipt_id": f"r-{index}"},
    }


def enqueued(record: dict[str, Any], actor: str = "service") -> NewEvent:
    data = {
        "request": record,
        "fingerprint": hashlib.sha256(canonical_json(record)).hexdigest(),
        "max_attempts": MAX_ATTEMPTS,
        "due_at": None,
    }
    return NewEvent(EventType.ENQUEUED, data, actor)


def _attempt(number: int, now: datetime, worker: str) -> NewEvent:
    lease_until = _formatted(now + LEASE)
    return NewEvent(EventType.ATTEMPTED, {"attempt": number, "lease_until": lease_until}, worker)


@functools.lru_cache(maxsize=16)
def _formatted(moment: datetime) -> str:
    """``format_time``, remembered (a batch shares one time)."""
    return format_time(moment)


def _failure(number: int, now: datetime, worker: str, last: bool) -> list[NewEvent]:
    failed = NewEvent(
        EventType.FAILED,
        {"attempt": number, "reason": "gateway timeout", "retryable": True},
        worker,
    )
    if last:
        dead = {"attempt": number, "reason": "attempts exhausted"}
        return [failed, NewEvent(EventType.DEAD_LETTERED, dead, "system")]
    requeued = {"due_at": _formatted(now), "reason": "gateway timeout", "source": "retry"}
    return [failed, NewEvent(EventType.REQUEUED, requeued, "system")]


def history(kind: str, record: dict[str, Any], now: datetime, worker: str) -> list[NewEvent]:
    """A legal event sequence for one job of the given kind."""
    events = [enqueued(record)]
    if kind == "waiting":
        return events
    if kind == "processing":
        return [*events, _attempt(1, now, worker)]
    failures = {"completed": 0, "retried": 1, "dead": MAX_ATTEMPTS}[kind]
    for number in range(1, failures + 1):
        events.append(_attempt(number, now, worker))
        events.extend(_failure(number, now, worker, last=number == MAX_ATTEMPTS))
    if kind != "dead":
        events.append(_attempt(failures + 1, now, worker))
        events.append(NewEvent(EventType.COMPLETED, {"attempt": failures + 1}, worker))
    return events


def _pick_kind(rng: random.Random) -> str:
    roll = rng.random()
    for kind, upto in MIX:
        if roll < upto:
            return kind
    return MIX[-1][0]


@dataclass
class _Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Generated:
    events: int
    jobs: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def _batches(
    rng: random.Random, target: int, batch_events: int, clock: _Clock
) -> Iterator[list[StreamAppend]]:
    written = 0
    index = 0
    while written < target:
        batch: list[StreamAppend] = []
        size = 0
        while size < batch_events and written + size < target:
            record = request_record(rng, index)
            worker = f"worker-{index % 8}"
            events = history(_pick_kind(rng), record, clock.now, worker)
            events = events[: target - written - size]
            job_id = job_id_at(clock.now, rng.getrandbits(RANDOM_BITS))
            batch.append(StreamAppend(job_id, 0, events))
            size += len(events)
            index += 1
        written += size
        yield batch


#: batches after which the generator refreshes the planner's statistics
ANALYZE_AFTER = frozenset({0, 3, 20, 100})


def analyze(engine: Engine) -> None:
    """``ANALYZE events``: without statistics PostgreSQL plans the store's version
    look-up (``job_id IN (…)``) as a sequential scan, so each batch costs O(log
    size); a server with autovacuum (off on this machine) would do this itself."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE events")


def check_histories(stored: list[StoredEvent]) -> None:
    """Fold each job's events through the one transition table (raises if illegal)."""
    by_job: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in stored:
        by_job[event.job_id].append(event)
    for events in by_job.values():
        fold(events)


def generate(
    engine: Engine,
    n_events: int,
    *,
    seed: int = 8,
    span: timedelta = timedelta(days=30),
    batch_events: int = 5_000,
    check_every: int = 20,
) -> Generated:
    """Append ``n_events`` events of valid job histories; returns the rate.

    Every ``check_every``-th batch is folded through the lifecycle as it is written.
    """
    rng = random.Random(seed)
    clock = _Clock()
    store = EventStore(engine, clock=clock)
    n_batches = max(1, -(-n_events // batch_events))
    step = span / n_batches
    jobs = 0
    started = time.perf_counter()
    for number, batch in enumerate(_batches(rng, n_events, batch_events, clock)):
        result = store.append_many(batch)
        jobs += len(batch)
        if number in ANALYZE_AFTER:
            analyze(engine)
        if number % check_every == 0:
            check_histories(result.events)
        clock.now += step
    seconds = time.perf_counter() - started
    # the statistics an operator's autovacuum would have gathered by now (off on this
    # server): without them the planner takes the last days of the log for nearly empty
    # and scans a whole day to find one user's few events (not timed: not the writer's work)
    analyze(engine)
    return Generated(n_events, jobs, seconds)
