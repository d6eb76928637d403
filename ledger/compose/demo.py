"""``ledger demo``: the whole system on one machine, end to end, reproducibly.

A fresh SQLite ledger, settlements from a flaky client (some sent twice with the
same key), an operator cancelling one before it runs, workers against a
simulated payment gateway that fails transiently, refuses a few accounts and
accepts some payouts to confirm them later, an operator requeueing one
dead-lettered job, the provider's webhooks confirming the accepted payouts, a
payout that bounces and a partial refund, then the auditor's checks. The CLI
renders what this returns.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import migrate
from ledger.gateway import SimulatedGateway
from ledger.lifecycle import JobStatus
from ledger.request import SettlementRequest
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from ledger.worker import Worker, WorkerOptions
from projections import queries
from projections.runner import Projector

#: share of settlements a flaky client sends twice with the same idempotency key
DUPLICATE_RATE = 0.1
#: share of payouts the simulated provider accepts now and confirms later (by webhook)
PENDING_RATE = 0.05
OPERATOR = "demo-operator"

Tick = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    jobs: int = 1000
    fail_rate: float = 0.1
    seed: int = 7
    database: Path = Path("ledger-demo.db")
    concurrency: int = 8


@dataclass
class DemoRun:
    """What happened, for the report."""

    settings: Settings
    enqueued: int = 0
    duplicates_sent: int = 0
    duplicates_deduplicated: int = 0
    requeued_job: str | None = None
    #: the settlement after the queue: a cancel, confirmations, a bounce, a refund
    cancelled_job: str | None = None
    confirmed_jobs: list[str] = field(default_factory=list)
    bounced_job: str | None = None
    refunded_job: str | None = None
    gateway: SimulatedGateway = field(default_factory=SimulatedGateway)


def demo_settings(database: Path) -> Settings:
    """Embedded default, with retries fast enough to watch (tens of milliseconds)."""
    return Settings(
        database_url=f"sqlite:///{database}",
        redis_url=None,
        sqlite_synchronous="NORMAL",
        default_max_attempts=4,
        retry_base_seconds=0.02,
        retry_cap_seconds=0.2,
        sweep_seconds=0.2,
        relay_grace_seconds=0.2,
    )


def fresh_database(database: Path) -> None:
    """Remove a previous demo's file (and its WAL side files), then migrate."""
    for suffix in ("", "-wal", "-shm", ".projections.lock"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    migrate.upgrade(f"sqlite:///{database}")


def settlements(options: DemoOptions) -> list[SettlementRequest]:
    """Deterministic settlements: 50 users, 12 places, KRW mostly, some USD."""
    rng = random.Random(options.seed)
    requests = []
    for n in range(options.jobs):
        usd = rng.random() < 0.15
        requests.append(
            SettlementRequest(
                user_id=f"user-{rng.randrange(50):03d}",
                place_id=f"place-{rng.randrange(12):02d}",
                mission_id=f"mission-{rng.randrange(30):02d}",
                amount=rng.randrange(100, 5_000) if usd else rng.randrange(1, 50) * 1_000,
                currency="USD" if usd else "KRW",
                idempotency_key=f"scan-{options.seed}-{n:06d}",
                metadata={"qr_token": f"qr-{rng.getrandbits(48):012x}", "receipt_id": f"r-{n}"},
            )
        )
    return requests


def run_demo(options: DemoOptions, on_enqueue: Tick, on_settled: Tick) -> DemoRun:
    """Run the demo; ``on_enqueue``/``on_settled`` are told progress (jobs so far)."""
    fresh_database(options.database)
    run = DemoRun(settings=demo_settings(options.database))
    run.gateway = SimulatedGateway(
        seed=options.seed, fail_rate=options.fail_rate, pending_rate=PENDING_RATE
    )
    ledger = build_ledger(run.settings)
    ids = random.Random(options.seed)
    ledger.store.new_job_id = lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4))
    try:
        job_ids = _enqueue(ledger, options, run, on_enqueue)
        run.cancelled_job = _operator_cancels(ledger, job_ids[-1])
        _work(ledger, run.gateway, options, lambda: _settled(ledger, on_settled))
        run.requeued_job = _operator_requeues_one(ledger, run.gateway)
        if run.requeued_job is not None:
            _work(ledger, run.gateway, options, lambda: _settled(ledger, on_settled))
        run.confirmed_jobs = _provider_confirms(ledger, run.gateway)
        _settled(ledger, on_settled)
        run.bounced_job, run.refunded_job = _money_comes_back(ledger, job_ids)
        _settled(ledger, on_settled)
    finally:
        ledger.close()
    return run


def _enqueue(ledger: Ledger, options: DemoOptions, run: DemoRun, tick: Tick) -> list[str]:
    """Enqueue every settlement; returns the job ids in order."""
    flaky = random.Random(options.seed + 1)
    job_ids = []
    for n, request in enumerate(settlements(options), start=1):
        job_ids.append(ledger.enqueue(request, actor="scan-verify").job_id)
        run.enqueued += 1
        if flaky.random() < DUPLICATE_RATE:  # the client timed out and sent it again
            run.duplicates_sent += 1
            if not ledger.enqueue(request, actor="scan-verify").created:
                run.duplicates_deduplicated += 1
        tick(n)
    return job_ids


def _work(
    ledger: Ledger, gateway: SimulatedGateway, options: DemoOptions, poll: Callable[[], None]
) -> None:
    """A burst worker in a thread (it exits when nothing is left), polled for progress."""
    worker = Worker(
        ledger,
        gateway,
        WorkerOptions(
            concurrency=options.concurrency,
            prefetch=64,
            burst=True,
            lease=timedelta(seconds=30),
            sweep_seconds=ledger.settings.sweep_seconds,
            idle_seconds=0.05,
        ),
        worker_id="demo-worker",
    )
    thread = threading.Thread(target=worker.run, name="demo-worker")
    thread.start()
    while thread.is_alive():
        poll()
        thread.join(0.1)
    poll()


def _settled(ledger: Ledger, tick: Tick) -> None:
    Projector(ledger.reader).catch_up()
    stats = queries.stats(ledger.engine, datetime.now(UTC))
    tick(sum(stats.count(name) for name in ("completed", "submitted", "dlq", "cancelled")))


def _operator_requeues_one(ledger: Ledger, gateway: SimulatedGateway) -> str | None:
    """The operator checks the oldest dead-lettered job's account, fixes it, requeues it."""
    page = queries.dlq_page(ledger.engine, 0, -1)
    if not page.jobs:
        return None
    oldest = page.jobs[-1]
    gateway.fixed.add(str(oldest.request["idempotency_key"]))
    ledger.requeue_from_dlq(
        oldest.job_id, actor=OPERATOR, reason="account re-verified with the customer"
    )
    return oldest.job_id


def _operator_cancels(ledger: Ledger, job_id: str) -> str:
    """Before the workers start, an operator stops a payout flagged as fraud."""
    ledger.cancel(job_id, actor=OPERATOR, reason="QR code reported as stolen")
    return job_id


def _provider_confirms(ledger: Ledger, gateway: SimulatedGateway) -> list[str]:
    """The provider pays the payouts it accepted, and its webhooks say so."""
    confirmed = []
    for job in ledger.settling.overdue(datetime.now(UTC) + timedelta(days=365)):
        assert job.reference is not None  # a submitted payout carries its reference
        result = gateway.confirm(job.reference)
        ledger.confirm(job.job_id, result, actor="provider-webhook", source="webhook")
        confirmed.append(job.job_id)
    return confirmed


def _money_comes_back(ledger: Ledger, job_ids: list[str]) -> tuple[str | None, str | None]:
    """A payout bounces (the account was closed after all), a payee refunds half of another."""
    paid = []
    for job_id in job_ids:
        job = ledger.job(job_id)
        if job.status is JobStatus.COMPLETED:
            paid.append(job)
        if len(paid) == 2:
            break
    else:
        return None, None
    bounced, refunded = paid
    ledger.reverse(
        bounced.job_id,
        bounced.net,
        reason="payout returned: beneficiary account closed",
        actor="provider-webhook",
        reference=f"rv-{bounced.reference}",
    )
    ledger.refund(
        refunded.job_id,
        max(refunded.net // 2, 1),
        reason="mission receipt refunded to the customer",
        actor=OPERATOR,
        key=f"refund-{refunded.idempotency_key}",
    )
    return bounced.job_id, refunded.job_id
