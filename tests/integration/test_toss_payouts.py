"""The Toss handler against the stub on a loopback port: one payout per round, whatever fails.

Every scenario ends by counting the stub's double payments (rounds Toss paid
more than once): 0. docs/providers/toss.md lists the scenarios and the counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure, ProviderRefused
from ledger.handler import run_handler
from ledger.lifecycle import JobStatus
from ledger.polling import Poller
from ledger.providers.toss.errors import TossRateLimited, TossRefused, TossUnavailable
from ledger.providers.toss.handler import TossPayouts
from ledger.providers.toss.stub_server import StubServer
from ledger.service import Ledger
from tests.queue_fixtures import on_stacks
from tests.toss_support import SELLER, claim_one, toss_request

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])


def held(ledger: Ledger, key: str = "k1", seller: str = SELLER) -> ClaimedJob:
    ledger.enqueue(toss_request(key, seller=seller))
    return claim_one(ledger)


def test_a_payout_is_requested_once_and_reported_pending(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    job = held(ledger)
    result = payouts(job)
    assert result.pending and result.status == "REQUESTED"
    (payout,) = toss.stub.payouts.values()
    assert result.reference == payout["id"]
    assert payout["refPayoutId"] == job.provider_key
    assert payout["destination"] == SELLER
    assert payout["amount"] == {"currency": "KRW", "value": 10_000}
    assert payout["metadata"]["ledgerJobId"] == job.id
    # the same attempt again finds it and asks for nothing new
    assert payouts(job).reference == payout["id"]
    assert toss.stub.calls["POST /v2/payouts"] == 1


def test_a_settlement_without_a_seller_is_refused_before_any_call(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    ledger.enqueue(toss_request("k1").model_copy(update={"metadata": {}}))
    outcome = run_handler(payouts, claim_one(ledger))
    assert not outcome.retryable and "tossSellerId" in (outcome.error or "")
    assert sum(toss.stub.calls.values()) == 0


def test_timeout_after_acceptance_never_pays_twice(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    toss.stub.switches.hang_after_accept = 1
    job = held(ledger)
    with pytest.raises(TossUnavailable, match="looked up"):
        payouts(job)
    (payout_id,) = toss.stub.payouts  # Toss accepted it before the client gave up
    for _ in range(3):  # every later attempt finds it
        assert payouts(job).reference == payout_id
    toss.stub.complete(payout_id)
    assert payouts(job).status == "COMPLETED"
    assert toss.stub.calls["POST /v2/payouts"] == 1
    assert toss.stub.double_payments() == 0


def test_a_call_that_hung_before_acceptance_is_requested_again_under_the_same_key(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    toss.stub.switches.hang_before_accept = 1
    job = held(ledger)
    with pytest.raises(TossUnavailable):
        payouts(job)
    assert toss.stub.payouts == {}
    assert payouts(job).pending
    assert len(toss.stub.payouts) == 1 and toss.stub.double_payments() == 0


def test_a_burst_of_5xx_is_retryable_and_pays_once(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    toss.stub.switches.server_errors = 3
    job = held(ledger)
    outcomes = [run_handler(payouts, job) for _ in range(3)]
    assert all(o.error and o.retryable for o in outcomes)
    assert run_handler(payouts, job).result is not None
    assert len(toss.stub.payouts) == 1 and toss.stub.double_payments() == 0


def test_a_short_rate_limit_hint_is_waited_in_the_call(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, sleeps: list[float]
) -> None:
    toss.stub.switches.rate_limits = 1
    toss.stub.switches.retry_after = 1
    assert payouts(held(ledger)).pending
    assert sleeps == [1.0]


def test_a_long_rate_limit_hint_fails_the_attempt_as_retryable(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, sleeps: list[float]
) -> None:
    toss.stub.switches.rate_limits = 1
    toss.stub.switches.retry_after = 30
    job = held(ledger)
    with pytest.raises(TossRateLimited) as caught:
        payouts(job)
    assert caught.value.retry_after == 30 and sleeps == []
    assert run_handler(payouts, job).result is not None  # the next attempt goes through
    assert len(toss.stub.payouts) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "FORBIDDEN_SELLER_PAYOUT"), (404, "NOT_FOUND_SELLER"), (400, "INVALID_ACCOUNT")],
)
def test_a_permanent_refusal_dead_letters_with_the_providers_code_and_message(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, status: int, code: str
) -> None:
    toss.stub.switches.refused_sellers["seller_kyc"] = (status, code, "KYC required")
    job = held(ledger, seller="seller_kyc")
    with pytest.raises(TossRefused) as caught:
        payouts(job)
    assert (caught.value.code, caught.value.status) == (code, status)
    outcome = run_handler(payouts, job)
    assert not outcome.retryable and code in (outcome.error or "")
    assert "KYC required" in (outcome.error or "")
    assert toss.stub.payouts == {}


def test_a_payout_toss_failed_is_paid_again_as_the_next_refpayoutid(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    job = held(ledger)
    first = payouts(job).reference
    assert first is not None
    toss.stub.fail(first, "PROVIDER_ERROR", "temporary")
    second = payouts(job)
    assert second.pending and second.reference != first
    assert toss.stub.get(str(second.reference))["refPayoutId"] == f"{job.provider_key}:retry-2"
    toss.stub.complete(str(second.reference))
    assert toss.stub.double_payments() == 0 and sum(toss.stub.paid().values()) == 1


def test_poll_reads_the_payout_and_a_failure_as_the_attempts(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    ledger.enqueue(toss_request())
    job = claim_one(ledger)
    outcome = run_handler(payouts, job)
    (recorded,) = ledger.record([outcome])
    assert recorded.state is not None and recorded.state.status is JobStatus.SUBMITTED
    submitted = ClaimedJob(recorded.state, job.lease_until, job.request)
    assert payouts.poll(submitted).pending
    toss.stub.fail(str(submitted.reference), "INVALID_ACCOUNT", "account closed")
    with pytest.raises(PermanentFailure, match="account closed"):
        payouts.poll(submitted)


def test_cancel_goes_through_toss_and_a_refusal_is_providers(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    ledger.enqueue(toss_request())
    job = claim_one(ledger)
    (recorded,) = ledger.record([run_handler(payouts, job)])
    assert recorded.state is not None
    submitted = ClaimedJob(recorded.state, job.lease_until, job.request)
    result = payouts.cancel(submitted)
    assert result.status == "CANCELED"
    with pytest.raises(ProviderRefused, match="NOT_CANCELABLE_PAYOUT"):
        payouts.cancel(submitted)


def test_a_wrong_secret_key_is_a_permanent_refusal(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    toss.stub.secret_key = "test_sk_other"
    with pytest.raises(TossRefused, match="401"):
        payouts(held(ledger))


def test_a_silent_payout_is_settled_by_the_workers_look_up(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts
) -> None:
    job_ids = [ledger.enqueue(toss_request(key)).job_id for key in ("k1", "k2")]
    for _ in job_ids:
        ledger.record([run_handler(payouts, claim_one(ledger))])
    by_payout = {ledger.job(job_id).reference: job_id for job_id in job_ids}
    first, second = toss.stub.payouts
    toss.stub.complete(first)  # no webhook URL: Toss's word reaches us only by the look-up
    toss.stub.fail(second, "INVALID_ACCOUNT", "account closed")
    poller = Poller.of(ledger, payouts, actor="poller")
    assert poller is not None
    assert poller.poll_due(datetime.now(UTC) + timedelta(days=1)) == 2
    assert ledger.job(by_payout[first]).status is JobStatus.COMPLETED
    dead = ledger.job(by_payout[second])
    assert dead.status is JobStatus.DEAD and "account closed" in (dead.last_error or "")
    assert toss.stub.double_payments() == 0
