"""The settlement after the queue: the provider's outcome, confirmation, cancel, money back.

Runs on SQLite + fakeredis (the embedded default) and PostgreSQL + Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.claims import ClaimedJob, Outcome
from ledger.decisions import attempt_event
from ledger.errors import (
    ConcurrencyError,
    InvalidRequest,
    JobInFlight,
    JobNotFound,
    ProviderRefused,
    RecordConflict,
    TooMuchBack,
    WrongState,
)
from ledger.events import EventType
from ledger.handler import run_handler
from ledger.lifecycle import JobStatus
from ledger.provider import ProviderResult
from ledger.service import Ledger
from projections import queries, reconcile
from projections.runner import Projector
from tests.factories import request
from tests.queue_fixtures import holds, on_stacks

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])
LEASE = timedelta(seconds=30)


def enqueue(ledger: Ledger, key: str = "k1", amount: int = 10_000) -> str:
    return ledger.enqueue(request(idempotency_key=key, amount=amount)).job_id


def claim(ledger: Ledger) -> ClaimedJob:
    (held,) = ledger.claim("w1", 1, LEASE)
    return held


def types(ledger: Ledger, job_id: str) -> list[str]:
    return [event.type.value for event in ledger.store.read_stream(job_id)]


def paid(ledger: Ledger, key: str = "k1", result: ProviderResult | None = None) -> str:
    job_id = enqueue(ledger, key)
    (recorded,) = ledger.record([Outcome(claim(ledger), result=result)])
    assert recorded.state is not None and recorded.state.status is JobStatus.COMPLETED
    return job_id


def submitted(ledger: Ledger, key: str = "k1", reference: str = "po_1") -> str:
    job_id = enqueue(ledger, key)
    pending = ProviderResult(reference=reference, status="REQUESTED", pending=True)
    ledger.record([Outcome(claim(ledger), result=pending)])
    assert ledger.job(job_id).status is JobStatus.SUBMITTED
    return job_id


# -- the provider's outcome -------------------------------------------------------------


def test_a_result_is_recorded_in_completed_and_shown(ledger: Ledger) -> None:
    job_id = paid(ledger, result=ProviderResult(reference="po_9", fee=120, status="COMPLETED"))
    last = ledger.store.read_stream(job_id)[-1]
    assert last.type is EventType.COMPLETED
    assert last.data == {
        "attempt": 1,
        "amount": 10_000,
        "reference": "po_9",
        "fee": 120,
        "status": "COMPLETED",
    }
    job = ledger.job(job_id)
    assert (job.reference, job.fee, job.provider_status, job.paid) == (
        "po_9",
        120,
        "COMPLETED",
        10_000,
    )


def test_a_mapping_result_is_read_strictly(ledger: Ledger) -> None:
    enqueue(ledger)
    held = claim(ledger)
    assert run_handler(lambda _job: {"reference": "po_1", "fee": 5}, held).result == (
        ProviderResult(reference="po_1", fee=5)
    )
    bad = run_handler(lambda _job: {"reference": "po_1", "fee": -5}, held)
    assert bad.error is not None and "invalid result" in bad.error and not bad.retryable
    unknown = run_handler(lambda _job: {"reference": "po_1", "colour": "red"}, held)
    assert unknown.error is not None and not unknown.retryable
    assert run_handler(lambda _job: "ok", held).result is None  # older handlers: nothing


# -- asynchronous confirmation -----------------------------------------------------------


def test_a_pending_result_submits_and_a_confirmation_completes(ledger: Ledger) -> None:
    job_id = submitted(ledger)
    assert holds(ledger.queue, job_id) is None  # out of the hot queue
    job = ledger.job(job_id)
    assert job.reference == "po_1" and job.due_at is not None
    assert ledger.settling.overdue(job.due_at - timedelta(seconds=1)) == []
    assert [j.job_id for j in ledger.settling.overdue(job.due_at)] == [job_id]
    done = ledger.confirm(job_id, ProviderResult(reference="po_1", fee=30, status="COMPLETED"),
                          actor="toss")  # fmt: skip
    assert done.appended and done.job.status is JobStatus.COMPLETED and done.job.paid == 10_000
    again = ledger.confirm(job_id, ProviderResult(reference="po_1"), actor="toss")
    assert not again.appended  # a webhook delivered twice appends nothing
    assert types(ledger, job_id)[-2:] == ["submitted", "completed"]


def test_a_provider_failure_is_retried_then_dead_lettered(ledger: Ledger) -> None:
    job_id = submitted(ledger)
    failed = ledger.provider_failed(job_id, "bank refused", actor="toss", retryable=False)
    assert failed.job.status is JobStatus.DEAD
    assert types(ledger, job_id)[-2:] == ["failed", "dead_lettered"]
    with pytest.raises(WrongState):
        ledger.confirm(job_id, ProviderResult(reference="po_1"), actor="toss")


def test_overdue_shows_in_stats(ledger: Ledger) -> None:
    job_id = submitted(ledger)
    Projector(ledger.store).catch_up()
    due = ledger.job(job_id).due_at
    assert due is not None
    before = queries.stats(ledger.engine, due - timedelta(seconds=1)).as_api()["stats"]
    after = queries.stats(ledger.engine, due + timedelta(seconds=1)).as_api()["stats"]
    assert (before["submitted"], before["overdue"], after["overdue"]) == (1, 0, 1)


# -- cancel -------------------------------------------------------------------------------


def test_cancel_a_waiting_job_takes_it_out_of_the_queue(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    before = ledger.job(job_id)
    result = ledger.cancel(job_id, actor="ops", reason="fraud")
    assert result.appended and result.job.status is JobStatus.CANCELLED
    assert holds(ledger.queue, job_id) is None
    assert ledger.claim("w1", 1, LEASE) == []
    # a claim that read the job before the cancel is refused by version
    with pytest.raises(ConcurrencyError):
        ledger.store.append(
            job_id, before.version, [attempt_event(before, "w1", datetime.now(UTC) + LEASE)]
        )
    # the key keeps returning the cancelled job; cancelling again appends nothing
    again = ledger.enqueue(request(idempotency_key="k1"))
    assert (again.job_id, again.created) == (job_id, False)
    assert not ledger.cancel(job_id, actor="ops", reason="fraud").appended
    last = ledger.store.read_stream(job_id)[-1]
    assert (last.type, last.actor, last.data["reason"]) == (EventType.CANCELLED, "ops", "fraud")


def test_cancel_refuses_a_job_a_worker_holds_naming_the_attempt(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    claim(ledger)
    with pytest.raises(JobInFlight, match="attempt 1"):
        ledger.cancel(job_id, actor="ops", reason="fraud")
    assert types(ledger, job_id) == ["enqueued", "attempted"]


def test_cancel_a_dead_lettered_job_but_never_a_paid_one(ledger: Ledger) -> None:
    dead = enqueue(ledger, "dead")
    ledger.record([Outcome(claim(ledger), "refused", retryable=False)])
    assert ledger.cancel(dead, actor="ops", reason="closed").job.status is JobStatus.CANCELLED
    done = paid(ledger, "done")
    with pytest.raises(WrongState, match="completed"):
        ledger.cancel(done, actor="ops", reason="late")
    with pytest.raises(JobNotFound):
        ledger.cancel("no-such-job", actor="ops", reason="x")


def test_cancel_a_submitted_payout_only_through_the_provider(ledger: Ledger) -> None:
    job_id = submitted(ledger)
    with pytest.raises(WrongState, match="through the provider"):
        ledger.cancel(job_id, actor="ops", reason="fraud")

    def refuses(_job: ClaimedJob) -> None:
        raise ProviderRefused("the payout already executed")

    with pytest.raises(ProviderRefused):
        ledger.cancel(job_id, actor="ops", reason="fraud", provider_cancel=refuses)
    assert types(ledger, job_id)[-1] == "submitted"
    asked: list[str | None] = []

    def cancels(job: ClaimedJob) -> ProviderResult:
        asked.append(job.reference)
        return ProviderResult(reference=job.reference, status="CANCELED")

    result = ledger.cancel(job_id, actor="ops", reason="fraud", provider_cancel=cancels)
    assert asked == ["po_1"] and result.job.status is JobStatus.CANCELLED
    assert ledger.store.read_stream(job_id)[-1].data["status"] == "CANCELED"


# -- money coming back -----------------------------------------------------------------------


def test_reversal_and_refund_lower_the_net_never_below_zero(ledger: Ledger) -> None:
    job_id = paid(ledger)
    bounce = ledger.reverse(job_id, 4_000, reason="bounced", actor="ops", reference="rv_1")
    assert (bounce.job.status, bounce.job.reversed, bounce.job.net) == (
        JobStatus.COMPLETED,
        4_000,
        6_000,
    )
    back = ledger.refund(job_id, 1_000, reason="correction", actor="ops", key="rf-1")
    assert (back.job.refunded, back.job.net) == (1_000, 5_000)
    with pytest.raises(TooMuchBack):
        ledger.refund(job_id, 5_001, reason="too much", actor="ops")
    with pytest.raises(InvalidRequest, match="currency"):
        ledger.refund(job_id, 1, reason="x", actor="ops", currency="USD")
    for amount in (0, -1):
        with pytest.raises(InvalidRequest):
            ledger.refund(job_id, amount, reason="x", actor="ops")
    assert types(ledger, job_id)[-2:] == ["reversed", "refunded"]


def test_money_back_is_idempotent(ledger: Ledger) -> None:
    job_id = paid(ledger)
    first = ledger.reverse(job_id, 1_000, reason="bounced", actor="ops", reference="rv_1")
    again = ledger.reverse(job_id, 1_000, reason="other words", actor="ops", reference="rv_1")
    assert first.appended and not again.appended
    with pytest.raises(RecordConflict):
        ledger.reverse(job_id, 2_000, reason="bounced", actor="ops", reference="rv_1")
    click = ledger.refund(job_id, 500, reason="double click", actor="ops")
    double = ledger.refund(job_id, 500, reason="double click", actor="ops")
    assert click.appended and not double.appended
    assert types(ledger, job_id).count("refunded") == 1


def test_money_back_needs_a_completed_job(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    with pytest.raises(WrongState, match="after a payout completed"):
        ledger.reverse(job_id, 1, reason="x", actor="ops")
    assert types(ledger, job_id) == ["enqueued"]


# -- a new payment round -----------------------------------------------------------------------


def test_a_reversed_amount_is_paid_again_under_a_new_provider_key(ledger: Ledger) -> None:
    job_id = paid(ledger)
    with pytest.raises(WrongState):
        ledger.repay(job_id, actor="ops", reason="nothing reversed")
    ledger.reverse(job_id, 3_000, reason="bounced", actor="ops")
    again = ledger.repay(job_id, actor="ops", reason="account fixed")
    assert (again.job.status, again.job.round) == (JobStatus.WAITING, 2)
    held = claim(ledger)
    assert (held.round, held.amount, held.provider_key) == (2, 3_000, "k1:round-2")
    (recorded,) = ledger.record([Outcome(held, result=ProviderResult(reference="po_2"))])
    assert recorded.state is not None
    assert (recorded.state.paid, recorded.state.reversed, recorded.state.net) == (
        13_000,
        3_000,
        10_000,
    )
    with pytest.raises(WrongState):
        ledger.repay(job_id, actor="ops", reason="nothing left to pay")


# -- the read models ------------------------------------------------------------------------------


def test_stats_and_totals_show_money_and_conservation_holds(ledger: Ledger) -> None:
    one = paid(ledger, "one")
    ledger.reverse(one, 2_000, reason="bounced", actor="ops")
    ledger.refund(one, 1_000, reason="correction", actor="ops")
    paid(ledger, "two")
    submitted(ledger, "three", reference="po_3")
    ledger.cancel(enqueue(ledger, "four"), actor="ops", reason="fraud")
    Projector(ledger.store).catch_up()
    now = datetime.now(UTC)
    api = queries.stats(ledger.engine, now).as_api()["stats"]
    assert (api["completed"], api["submitted"], api["cancelled"], api["total"]) == (2, 1, 1, 4)
    money = api["amounts"]["KRW"]
    assert (money["paid"], money["reversed"], money["refunded"], money["net"]) == (
        20_000,
        2_000,
        1_000,
        17_000,
    )
    assert all(balance.balanced for balance in reconcile.conservation(ledger.engine, now))
    (row,) = queries.totals(ledger.engine, group_by=())
    assert (row.amount, row.reversed, row.refunded, row.net) == (20_000, 2_000, 1_000, 17_000)
    check = reconcile.check(ledger.store)
    assert check.difference_count == 0
