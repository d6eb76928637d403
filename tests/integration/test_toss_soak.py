"""Random faults at the stub and random webhook deliveries, a real worker: never a round paid twice.

Each seed draws the stub's switches (hangs before and after acceptance, 5xx
bursts, 429s, completion at acceptance with the webhook first, 1-3 copies of
every webhook), then runs rounds of: a burst worker with the Toss handler,
Toss executing or failing what it holds, Toss redelivering what was refused,
an operator requeueing what was dead-lettered. At the end every job is
completed, Toss paid each exactly once, and each job's reference is that payout.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest

from ledger.lifecycle import JobStatus
from ledger.providers.toss.handler import TossPayouts
from ledger.providers.toss.inbox import WebhookInbox
from ledger.providers.toss.stub import StubToss
from ledger.providers.toss.stub_server import StubServer
from ledger.providers.toss.webhooks import TossWebhooks
from ledger.service import Ledger
from ledger.worker import Worker, WorkerOptions
from tests.queue_fixtures import on_stacks
from tests.toss_support import SECURITY, toss_request

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])
JOBS = 10


def work(ledger: Ledger, payouts: TossPayouts) -> None:
    options = WorkerOptions(
        concurrency=4, prefetch=8, burst=True, lease=timedelta(seconds=30), idle_seconds=0.05
    )
    worker = Worker(ledger, payouts, options, worker_id="soak")
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()


def draw_faults(stub: StubToss, rng: random.Random) -> None:
    switches = stub.switches
    switches.hang_after_accept = rng.randrange(3)
    switches.hang_before_accept = rng.randrange(2)
    switches.server_errors = rng.randrange(6)
    switches.rate_limits = rng.randrange(4)
    switches.webhook_copies = rng.randrange(1, 4)
    switches.complete_on_accept = rng.random() < 0.5
    switches.webhook_before_answer = switches.complete_on_accept and rng.random() < 0.5


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_faults_and_deliveries_never_pay_a_round_twice(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, seed: int
) -> None:
    rng = random.Random(seed)
    stub = toss.stub
    receiver = TossWebhooks(ledger, WebhookInbox(ledger.engine), bytes.fromhex(SECURITY), 300)
    stub.deliver = lambda body, headers: receiver.receive(body, headers).status
    draw_faults(stub, rng)
    job_ids = [ledger.enqueue(toss_request(f"soak-{seed}-{n}")).job_id for n in range(JOBS)]
    for round_ in range(6):
        work(ledger, payouts)
        last = round_ == 5
        for payout_id in stub.pending():
            if not last and rng.random() < 0.2:
                stub.fail(payout_id, "PROVIDER_ERROR", "temporary")
            else:
                stub.complete(payout_id)
        stub.redeliver()
        for job_id in job_ids:
            if ledger.job(job_id).status is JobStatus.DEAD:
                ledger.requeue_from_dlq(job_id, actor="ops", reason="try again")
        if all(ledger.job(j).status is JobStatus.COMPLETED for j in job_ids):
            break
    jobs = [ledger.job(job_id) for job_id in job_ids]
    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * JOBS
    assert stub.double_payments() == 0
    assert sum(stub.paid().values()) == JOBS
    paid = {p["id"]: p for p in stub.payouts.values() if p["status"] == "COMPLETED"}
    assert {job.reference for job in jobs} == set(paid)
    assert all(paid[str(job.reference)]["metadata"]["ledgerJobId"] == job.job_id for job in jobs)
