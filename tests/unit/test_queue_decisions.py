"""Pure decisions: which events follow an outcome, and where Redis holds a job."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.decisions import (
    Place,
    allows,
    attempt_event,
    failure_events,
    follow_up_events,
    may_attempt,
    placement,
    to_ms,
)
from ledger.events import EventType
from ledger.lifecycle import Job, JobStatus
from ledger.retry import RetryPolicy
from tests.factories import T0, request

POLICY = RetryPolicy(1.0, 10.0)


def job(**changes: object) -> Job:
    base = Job(
        job_id="j",
        status=JobStatus.PROCESSING,
        version=2,
        request=request().as_record(),
        max_attempts=3,
        created_at=T0,
        updated_at=T0,
        attempts=1,
        round_attempts=1,
        worker="w1",
        lease_until=T0 + timedelta(seconds=30),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("round_attempts", "max_attempts", "retryable", "then"),
    [
        (1, 3, True, EventType.REQUEUED),
        (2, 3, True, EventType.REQUEUED),
        (3, 3, True, EventType.DEAD_LETTERED),
        (1, 1, True, EventType.DEAD_LETTERED),
        (1, 3, False, EventType.DEAD_LETTERED),
    ],
)
def test_failure_is_followed_by_a_retry_or_the_dlq(
    round_attempts: int, max_attempts: int, retryable: bool, then: EventType
) -> None:
    current = job(round_attempts=round_attempts, attempts=round_attempts, max_attempts=max_attempts)
    events = failure_events(
        current,
        round_attempts,
        "boom",
        retryable=retryable,
        actor="w1",
        policy=POLICY,
        rng=random.Random(1),
    )
    assert [e.type for e in events] == [EventType.FAILED, then]
    assert events[0].data == {"attempt": round_attempts, "reason": "boom", "retryable": retryable}
    if then is EventType.REQUEUED:
        assert events[1].data["source"] == "retry"
        assert events[1].due_in is not None
    else:
        assert events[1].data == {"attempt": round_attempts, "reason": "boom"}


@given(st.integers(1, 50), st.integers(0, 2**32))
def test_backoff_stays_under_the_policy_ceiling(attempt: int, seed: int) -> None:
    current = job(round_attempts=attempt, attempts=attempt, max_attempts=100)
    events = failure_events(
        current, attempt, "x", retryable=True, actor="w", policy=POLICY, rng=random.Random(seed)
    )
    delay = events[1].due_in
    assert delay is not None
    assert timedelta(0) <= delay <= timedelta(seconds=POLICY.ceiling(attempt))


def test_dlq_budget_counts_rounds_not_lifetime_attempts() -> None:
    # seven attempts in all, but only one since the operator's requeue: retry
    current = job(attempts=7, round_attempts=1, max_attempts=3)
    events = failure_events(
        current, 7, "x", retryable=True, actor="w", policy=POLICY, rng=random.Random(0)
    )
    assert events[1].type is EventType.REQUEUED


def test_follow_up_of_a_resting_failure() -> None:
    failed = job(status=JobStatus.FAILED, last_error="boom", round_attempts=3, attempts=3)
    (event,) = follow_up_events(failed, actor="repair", policy=POLICY, rng=random.Random(0))
    assert event.type is EventType.DEAD_LETTERED
    retry = job(status=JobStatus.FAILED, last_error="boom")
    (event,) = follow_up_events(retry, actor="repair", policy=POLICY, rng=random.Random(0))
    assert event.type is EventType.REQUEUED


def test_attempt_event_numbers_the_next_attempt() -> None:
    waiting = job(status=JobStatus.WAITING, attempts=2)
    event = attempt_event(waiting, "w9", T0)
    assert event.data == {"attempt": 3, "lease_until": "2026-01-01T00:00:00.000000Z"}
    assert event.actor == "w9"


def test_may_attempt_only_waiting_and_due() -> None:
    assert may_attempt(job(status=JobStatus.WAITING), T0)
    assert not may_attempt(job(status=JobStatus.WAITING, due_at=T0 + timedelta(1)), T0)
    assert may_attempt(job(status=JobStatus.WAITING, due_at=T0), T0)
    for status in (JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.DEAD, JobStatus.FAILED):
        assert not may_attempt(job(status=status), T0)
    assert allows(job(status=JobStatus.DEAD), EventType.REQUEUED)


@pytest.mark.parametrize(
    ("changes", "place", "score"),
    [
        ({"status": JobStatus.WAITING, "lease_until": None}, Place.WAITING, 0),
        (
            {"status": JobStatus.WAITING, "due_at": T0 + timedelta(seconds=5)},
            Place.WAITING,
            to_ms(T0 + timedelta(seconds=5)),
        ),
        ({}, Place.INFLIGHT, to_ms(T0 + timedelta(seconds=30))),
        ({"status": JobStatus.FAILED, "lease_until": None}, Place.INFLIGHT, 0),
        ({"status": JobStatus.COMPLETED}, Place.GONE, 0),
        ({"status": JobStatus.DEAD}, Place.GONE, 0),
    ],
)
def test_placement(changes: dict[str, object], place: Place, score: int) -> None:
    assert placement(job(**changes)) == (place, score)


def test_placement_of_unknown_job_is_gone() -> None:
    assert placement(None) == (Place.GONE, 0)
