"""``ledger demo --provider toss-stub``: the settlement story against the Toss stub.

The stub Toss runs on a loopback port; workers pay through the real Toss
handler (JWE bodies, Idempotency-Key, refPayoutId look-ups); the stub's signed
``payout.changed`` webhooks go to the receiver behind ``POST
/api/webhooks/toss`` (each delivered twice). On the way: a call that times out
after Toss accepted it, a burst of 5xx, a rate limit, a seller refused for KYC,
a payout Toss fails and the retry pays under the next refPayoutId, an operator
cancelling a payout through Toss, a bounce and a refund recorded. The CLI then
runs verify and reconciles the log against the stub's statement.
"""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from ledger.compose.demo import OPERATOR, demo_settings, fresh_database
from ledger.handler import Handler
from ledger.lifecycle import JobStatus
from ledger.providers.toss.client import TossClient
from ledger.providers.toss.handler import TossPayouts
from ledger.providers.toss.inbox import WebhookInbox
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.stub import StubToss
from ledger.providers.toss.stub_server import serve_stub
from ledger.providers.toss.webhooks import TossWebhooks
from ledger.request import SettlementRequest
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from ledger.worker import Worker, WorkerOptions

#: the seller Toss refuses (KYC not done): its payout is dead-lettered
KYC_SELLER = "seller_kyc_required"


@dataclass(frozen=True, slots=True)
class TossDemoOptions:
    jobs: int = 24
    seed: int = 7
    database: Path = Path("ledger-toss-demo.db")
    concurrency: int = 4


@dataclass
class TossDemoRun:
    """What happened, for the report."""

    settings: Settings
    stub: StubToss
    enqueued: int = 0
    refused_job: str | None = None
    cancelled_job: str | None = None
    failed_then_paid_job: str | None = None
    timed_out_job: str | None = None
    confirmed_jobs: list[str] = field(default_factory=list)
    bounced_job: str | None = None
    refunded_job: str | None = None


def run_toss_demo(options: TossDemoOptions, on_step: Callable[[str], None]) -> TossDemoRun:
    """Run the story; ``on_step`` is told each step as it starts."""
    fresh_database(options.database)
    key = secrets.token_bytes(32)  # a fresh security key and secret key for each run
    secret = "test_sk_" + secrets.token_hex(12)
    stub = StubToss(secret, key, hang_seconds=1.0)
    run = TossDemoRun(settings=demo_settings(options.database), stub=stub)
    ledger = build_ledger(run.settings)
    ids = random.Random(options.seed)
    ledger.store.new_job_id = lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4))
    server = serve_stub(stub)
    toss = TossSettings(
        api_url=server.url,
        secret_key=SecretStr(secret),
        security_key=SecretStr(key.hex()),
        timeout_seconds=0.5,
    )
    handler = TossPayouts(lambda: TossClient(toss))
    receiver = TossWebhooks(ledger, WebhookInbox(ledger.engine), key, tolerance_seconds=300)
    stub.deliver = lambda body, headers: receiver.receive(body, headers).status
    try:
        _story(ledger, handler, run, options, on_step)
    finally:
        handler.close()
        server.stop()
        ledger.close()
    return run


def _story(
    ledger: Ledger,
    handler: TossPayouts,
    run: TossDemoRun,
    options: TossDemoOptions,
    step: Callable[[str], None],
) -> None:
    stub = run.stub
    stub.switches.hang_after_accept = 1  # the first payout: Toss accepts it, the call times out
    stub.switches.server_errors = 2
    stub.switches.rate_limits = 1
    stub.switches.refused_sellers[KYC_SELLER] = (
        403,
        "FORBIDDEN_SELLER_PAYOUT",
        "The seller requires identity verification or customer verification (KYC).",
    )
    stub.switches.webhook_copies = 2  # Toss delivers at least once: here, always twice
    step("enqueue settlements (one to a seller without KYC)")
    job_ids = _enqueue(ledger, options, run)
    run.timed_out_job = job_ids[0]
    step("workers pay through Toss: every payout accepted, none executed yet")
    _work(ledger, handler, options)
    step("an operator cancels a payout through Toss before it executes")
    submitted = [j for j in job_ids if ledger.job(j).status is JobStatus.SUBMITTED]
    run.cancelled_job = submitted[-1]
    ledger.cancel(
        run.cancelled_job,
        actor=OPERATOR,
        reason="payee asked to hold the payout",
        provider_cancel=handler.cancel,
    )
    step("Toss fails one payout (bank maintenance); the retry pays it under a new refPayoutId")
    run.failed_then_paid_job = submitted[1]
    stub.fail(str(ledger.job(submitted[1]).reference), "PROVIDER_ERROR", "bank maintenance")
    _work(ledger, handler, options)
    step("Toss executes the payouts; its payout.changed webhooks confirm them")
    before = {j for j in job_ids if ledger.job(j).status is JobStatus.COMPLETED}
    for payout_id in stub.pending():
        stub.complete(payout_id)
    run.confirmed_jobs = [
        j for j in job_ids if ledger.job(j).status is JobStatus.COMPLETED and j not in before
    ]
    step("a payout bounces (reversed) and a payee refunds half of another")
    _money_comes_back(ledger, run)


def _enqueue(ledger: Ledger, options: TossDemoOptions, run: TossDemoRun) -> list[str]:
    rng = random.Random(options.seed)
    job_ids = []
    for n in range(options.jobs):
        seller = KYC_SELLER if n == options.jobs // 2 else f"seller_{rng.randrange(10):03d}"
        request = SettlementRequest(
            user_id=f"user-{n % 10:03d}",
            place_id=f"place-{rng.randrange(5):02d}",
            mission_id=f"mission-{rng.randrange(9):02d}",
            amount=rng.randrange(1, 50) * 1_000,
            currency="KRW",
            idempotency_key=f"toss-{options.seed}-{n:04d}",
            metadata={"tossSellerId": seller, "receipt_id": f"r-{n}"},
        )
        job_id = ledger.enqueue(request, actor="scan-verify").job_id
        job_ids.append(job_id)
        if seller == KYC_SELLER:
            run.refused_job = job_id
        run.enqueued += 1
    return job_ids


def _work(ledger: Ledger, handler: Handler, options: TossDemoOptions) -> None:
    """A burst worker until nothing is left to claim."""
    worker = Worker(
        ledger,
        handler,
        WorkerOptions(
            concurrency=options.concurrency,
            prefetch=16,
            burst=True,
            lease=timedelta(seconds=30),
            sweep_seconds=ledger.settings.sweep_seconds,
            idle_seconds=0.05,
        ),
        worker_id="toss-demo-worker",
    )
    thread = threading.Thread(target=worker.run, name="toss-demo-worker")
    thread.start()
    thread.join()


def _money_comes_back(ledger: Ledger, run: TossDemoRun) -> None:
    paid = [ledger.job(j) for j in run.confirmed_jobs if j != run.failed_then_paid_job][:2]
    if len(paid) < 2:
        return
    bounced, refunded = paid
    ledger.reverse(
        bounced.job_id,
        bounced.net,
        reason="payout returned by the bank: beneficiary account closed",
        actor="toss",
        reference=f"bounce-{bounced.reference}",
    )
    ledger.refund(
        refunded.job_id,
        max(refunded.net // 2, 1),
        reason="mission receipt refunded to the customer",
        actor=OPERATOR,
        key=f"refund-{refunded.idempotency_key}",
    )
    run.bounced_job, run.refunded_job = bounced.job_id, refunded.job_id
