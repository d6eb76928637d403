"""The chaos run's actors: producer, operator, fault loop and progress sampler (threads)."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ledger.errors import IdempotencyConflict, LedgerError
from ledger.request import SettlementRequest
from ledger.service import Ledger
from tests.faults.chaos_parts import OwnDatabase, OwnRedis, Supervisor
from tests.faults.chaos_provider import marker

CURRENCIES = ("KRW", "USD", "JPY")

#: jobs whose last event is this type, one row per job
LAST_EVENTS = sa.text(
    "SELECT e.job_id, e.type FROM events e JOIN (SELECT job_id, max(version) AS v"
    " FROM events GROUP BY job_id) m ON e.job_id = m.job_id AND e.version = m.v"
)


def last_events(ledger: Ledger) -> dict[str, str]:
    """Each job's last event type, read in one query."""
    with ledger.engine.connect() as conn:
        return {str(job_id): str(kind) for job_id, kind in conn.execute(LAST_EVENTS)}


@dataclass
class Producer:
    """Enqueues settlements at ``rate`` per second until stopped; a client that retries."""

    ledger: Ledger
    rng: random.Random
    rate: float
    requests: dict[str, SettlementRequest] = field(default_factory=dict)
    accepted: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    longest_call: float = 0.0
    longest_until_accepted: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self._one()
            self.stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _one(self) -> None:
        roll = self.rng.random()
        known = list(self.accepted)
        if known and roll < 0.10:
            key = self.rng.choice(known)
            self._send(key, self.requests[key], repeat=True)
        elif known and roll < 0.15:
            key = self.rng.choice(known)
            other = self.requests[key].model_copy(update={"amount": self.requests[key].amount + 1})
            self._send(key, other, conflicting=True)
        else:
            key = f"chaos-{len(self.requests)}"
            self.requests[key] = SettlementRequest(
                user_id=f"u{self.rng.randrange(50)}",
                place_id=f"p{self.rng.randrange(20)}",
                mission_id=f"m{self.rng.randrange(200)}",
                amount=self.rng.randrange(1, 50_000),
                currency=self.rng.choice(CURRENCIES),
                idempotency_key=key,
                metadata={"source": "chaos"},
            )
            self._send(key, self.requests[key])

    def _send(
        self,
        key: str,
        request: SettlementRequest,
        *,
        repeat: bool = False,
        conflicting: bool = False,
    ) -> None:
        """Send until answered (same key every time): a client that never gives up."""
        first = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                result = self.ledger.enqueue(request, actor="chaos-producer")
            except IdempotencyConflict:
                self._took(started)
                self.counts["conflicts refused" if conflicting else "unexpected conflicts"] += 1
                if not conflicting:
                    self.violations.append(f"key {key}: same request refused as a conflict")
                return
            except LedgerError:
                self._took(started)
                self.counts["calls failed (retried)"] += 1
                if self.stop.wait(0.2):
                    return
                continue
            self._took(started)
            self.longest_until_accepted = max(self.longest_until_accepted, time.monotonic() - first)
            self._answered(
                key, result.job_id, result.queued, repeat=repeat, conflicting=conflicting
            )
            return

    def _took(self, started: float) -> None:
        self.longest_call = max(self.longest_call, time.monotonic() - started)

    def _answered(
        self, key: str, job_id: str, queued: bool, *, repeat: bool, conflicting: bool
    ) -> None:
        if not queued:
            self.counts["answered queued:false"] += 1
        if conflicting:
            self.violations.append(f"key {key}: a conflicting request was accepted ({job_id})")
        elif key in self.accepted and self.accepted[key] != job_id:
            self.violations.append(f"key {key}: mapped to {self.accepted[key]} and {job_id}")
        self.accepted.setdefault(key, job_id)
        self.counts["repeats answered" if repeat else "jobs accepted"] += 1


@dataclass
class Operator:
    """Requeues dead-lettered jobs; after the faults, only those the provider paid."""

    ledger: Ledger
    provider: Path
    keys: Callable[[str], str | None]
    requeued: int = 0
    only_paid: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                dead = [
                    j for j, kind in last_events(self.ledger).items() if kind == "dead_lettered"
                ]
            except (LedgerError, sa.exc.SQLAlchemyError):
                continue
            for job_id in dead:
                if self.only_paid and not self._paid(job_id):
                    continue
                try:
                    self.ledger.requeue_from_dlq(job_id, actor="chaos-operator", reason="chaos")
                    self.requeued += 1
                except LedgerError:
                    continue

    def _paid(self, job_id: str) -> bool:
        key = self.keys(job_id)
        return key is not None and marker(self.provider, key).exists()


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    seconds: float
    slot: int


def schedule(
    rng: random.Random, seconds: float, kinds: list[str], slots: int, lease: float
) -> list[Fault]:
    """The run's faults, drawn from its seed: one every 1-3 s, each lasting a while."""
    faults: list[Fault] = []
    at = 2.0
    while at < seconds - 2:
        kind = rng.choice(kinds)
        length = {
            "sigstop": lease + rng.uniform(0.5, 3.0),
            "redis_restart": rng.uniform(0.5, 2.0),
            "redis_oom": rng.uniform(2.0, 6.0),
            "db_refuse": rng.uniform(3.0, 8.0),
        }.get(kind, 0.0)
        faults.append(Fault(at, kind, length, rng.randrange(slots)))
        at += rng.uniform(1.0, 3.0)
    return faults


@dataclass
class FaultLoop:
    """Runs the schedule: each fault in its own thread, so they stack."""

    faults: list[Fault]
    supervisor: Supervisor
    redis: OwnRedis
    database: OwnDatabase
    done: Counter[str] = field(default_factory=Counter)
    ends: list[float] = field(default_factory=list)
    #: (start, end) of every fault made
    spans: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    db_lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, started: float) -> None:
        threads = []
        for fault in self.faults:
            time.sleep(max(0.0, started + fault.at - time.monotonic()))
            thread = threading.Thread(target=self._inject, args=(fault,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    def _inject(self, fault: Fault) -> None:
        start = time.monotonic()
        try:
            getattr(self, f"_{fault.kind}")(fault)
        except Exception as error:  # a fault that could not be made is reported, not fatal
            self.errors.append(f"{fault.kind}: {error!r}")
            return
        with self.lock:
            self.done[fault.kind] += 1
            self.ends.append(time.monotonic())
            self.spans.append((start, self.ends[-1]))

    def alone(self) -> list[float]:
        """Ends of faults after which no other fault was under way (until the next began)."""
        return [
            end for _, end in self.spans if not any(s <= end < e for s, e in self.spans if e != end)
        ]

    def _kill9(self, fault: Fault) -> None:
        self.supervisor.signal(fault.slot, signal.SIGKILL)

    def _sigstop(self, fault: Fault) -> None:
        if self.supervisor.signal(fault.slot, signal.SIGSTOP) is None:
            return
        time.sleep(fault.seconds)
        self.supervisor.signal(fault.slot, signal.SIGCONT)

    def _flushall(self, fault: Fault) -> None:
        with self.redis.lock, self.redis.client() as client:
            client.flushall()

    def _redis_restart(self, fault: Fault) -> None:
        with self.redis.lock:
            self.redis.kill()
            time.sleep(fault.seconds)
            self.redis.start()

    def _redis_oom(self, fault: Fault) -> None:
        with self.redis.lock:
            self.redis.set_maxmemory(1)
            time.sleep(fault.seconds)
            self.redis.set_maxmemory(0)

    def _pg_terminate(self, fault: Fault) -> None:
        self.database.terminate()

    def _db_refuse(self, fault: Fault) -> None:
        with self.db_lock:
            self.database.refuse(True)
            try:
                time.sleep(fault.seconds)
            finally:
                self.database.refuse(False)


@dataclass
class Sampler:
    """Completions over time, to see how long progress stopped after each fault."""

    ledger: Ledger
    samples: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        query = sa.text("SELECT count(*) FROM events WHERE type = 'completed'")
        while not self.stop.wait(0.25):
            try:
                with self.ledger.engine.connect() as conn:
                    self.samples.append((time.monotonic(), int(conn.execute(query).scalar_one())))
            except (LedgerError, sa.exc.SQLAlchemyError):
                continue

    def resumed_after(self, moment: float, until: float) -> float | None:
        """Seconds from ``moment`` to the next completion, if one came before ``until``."""
        before = [count for at, count in self.samples if at <= moment]
        base = before[-1] if before else 0
        for at, count in self.samples:
            if moment < at <= until and count > base:
                return at - moment
        return None
