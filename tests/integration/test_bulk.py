"""Bulk cancel and requeue by filter, previewed and confirmed by a token, on SQLite +
fakeredis and PostgreSQL + Redis (``ledger.compose.bulk``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.compose.bulk import BulkAction, execute, preview
from ledger.errors import BulkChanged, InvalidRequest
from ledger.events import OPERATOR_STREAM, EventType
from ledger.lifecycle import JobStatus
from ledger.service import Ledger
from ledger.worker import Worker, WorkerOptions
from projections.listing import JobFilter
from projections.runner import Projector
from tests.factories import request
from tests.faults.handlers import mixed
from tests.queue_fixtures import on_stacks

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])

DEAD = JobFilter(status="dead")


def dead_letters(ledger: Ledger, count: int, user: str = "user-1") -> list[str]:
    ids = [
        ledger.enqueue(
            request(idempotency_key=f"{user}-{n}", user_id=user, metadata={"mode": "permanent"}),
            max_attempts=1,
        ).job_id
        for n in range(count)
    ]
    Worker(ledger, mixed, WorkerOptions(burst=True, sweep_seconds=0.05, idle_seconds=0.05)).run()
    Projector(ledger.store).catch_up()
    assert {ledger.job(job_id).status for job_id in ids} == {JobStatus.DEAD}
    return ids


def test_preview_then_cancel_exactly_the_previewed_set(ledger: Ledger) -> None:
    ids = dead_letters(ledger, 3)
    shown = preview(ledger, BulkAction.CANCEL, DEAD)
    assert shown.as_api()["count"] == 3
    assert shown.as_api()["amounts"] == {"KRW": {"jobs": 3, "amount": 30_000}}
    with pytest.raises(BulkChanged):
        execute(ledger, BulkAction.CANCEL, DEAD, "0" * 32, actor="ana", reason="outage")
    done = execute(ledger, BulkAction.CANCEL, DEAD, shown.token, actor="ana", reason="outage")
    assert (done.count, done.done, done.done_before, done.skipped) == (3, 3, 0, [])
    assert {ledger.job(job_id).status for job_id in ids} == {JobStatus.CANCELLED}
    (recorded,) = ledger.store.read_stream(OPERATOR_STREAM)
    assert recorded.type is EventType.BULK_REQUESTED and recorded.actor == "ana"
    assert sorted(job_id for job_id, _ in recorded.data["bulk"]["jobs"]) == sorted(ids)
    cancelled = ledger.store.read_stream(ids[0])[-1]
    assert cancelled.data["reason"] == f"bulk {shown.token[:12]}: outage"
    # a retry with the same token takes the recorded set and touches nothing again
    again = execute(ledger, BulkAction.CANCEL, DEAD, shown.token, actor="ana", reason="outage")
    assert (again.done, again.done_before) == (0, 3)
    assert len(ledger.store.read_stream(OPERATOR_STREAM)) == 1


def test_a_set_that_changed_since_the_preview_is_refused(ledger: Ledger) -> None:
    ids = dead_letters(ledger, 2)
    shown = preview(ledger, BulkAction.REQUEUE, DEAD)
    ledger.requeue_from_dlq(ids[0], actor="bo", reason="by hand")
    Projector(ledger.store).catch_up()
    with pytest.raises(BulkChanged) as refused:
        execute(ledger, BulkAction.REQUEUE, DEAD, shown.token, actor="ana", reason="x")
    assert refused.value.token == preview(ledger, BulkAction.REQUEUE, DEAD).token
    assert ledger.store.read_stream(OPERATOR_STREAM) == []
    assert ledger.job(ids[1]).status is JobStatus.DEAD


def test_filters_by_user_reason_amount_and_time(ledger: Ledger) -> None:
    dead_letters(ledger, 2, user="user-1")
    dead_letters(ledger, 1, user="user-2")
    by_user = preview(ledger, BulkAction.REQUEUE, JobFilter(status="dead", user_id="user-2"))
    assert len(by_user.jobs) == 1
    by_reason = JobFilter(status="dead", reason_contains="account closed")
    assert len(preview(ledger, BulkAction.REQUEUE, by_reason).jobs) == 3
    nothing = JobFilter(status="dead", reason_contains="50%_off")
    assert preview(ledger, BulkAction.REQUEUE, nothing).jobs == []
    later = datetime.now(UTC) + timedelta(hours=1)
    not_yet = JobFilter(status="dead", changed_from=later)
    assert preview(ledger, BulkAction.REQUEUE, not_yet).jobs == []
    costly = JobFilter(status="dead", min_amount=10_001)
    assert preview(ledger, BulkAction.REQUEUE, costly).jobs == []
    done = execute(
        ledger, BulkAction.REQUEUE, by_reason, preview(ledger, BulkAction.REQUEUE, by_reason).token,
        actor="ana", reason="provider back",
    )  # fmt: skip
    assert done.done == 3


def test_a_bulk_requeue_takes_dead_letters_only(ledger: Ledger) -> None:
    with pytest.raises(InvalidRequest):
        preview(ledger, BulkAction.REQUEUE, JobFilter(status="waiting"))
