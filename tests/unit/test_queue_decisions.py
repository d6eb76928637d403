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
    placement_after,
    to_ms,
)
from ledger.events import EventType, StoredEvent, format_time
from ledger.lifecycle import Job, JobStatus, apply, fold
from ledger.retry import RetryPolicy
from tests.factories import T0, default_data, request, stored

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


def _legal_history(choices: list[int], due: list[int | None]) -> list[StoredEvent]:
    """A legal history: at each step one of the events the lifecycle allows, picked by index."""
    events = [stored(EventType.ENQUEUED, data={**default_data(EventType.ENQUEUED)})]
    state = fold(events)
    for step, pick in enumerate(choices):
        assert state is not None
        legal = [kind for kind in EventType if allows(state, kind)]
        if not legal:
            break
        kind = legal[pick % len(legal)]
        version = len(events) + 1
        data = default_data(kind, state.attempts + 1)
        moment = T0 + timedelta(seconds=version)
        offset = due[step % len(due)] if due else None
        if kind is EventType.ATTEMPTED:
            data = attempt_event(state, "w", moment + timedelta(seconds=30)).data
        elif kind in (EventType.REQUEUED, EventType.ENQUEUED) and offset is not None:
            data = {**data, "due_at": format_time(moment + timedelta(seconds=offset))}
        events.append(stored(kind, version=version, data=data, at=moment))
        state = apply(state, events[-1])
    return events


@given(
    st.lists(st.integers(min_value=0, max_value=5), max_size=12),
    st.lists(st.one_of(st.none(), st.integers(min_value=-5, max_value=3600)), max_size=4),
)
def test_placement_from_the_last_event_equals_placement_of_the_fold(
    choices: list[int], due: list[int | None]
) -> None:
    events = _legal_history(choices, due)
    assert placement_after(events[-1]) == placement(fold(events))


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (EventType.COMPLETED, {"attempt": 1}, (Place.GONE, 0)),
        (EventType.DEAD_LETTERED, {"attempt": 3, "reason": "x"}, (Place.GONE, 0)),
        (EventType.FAILED, {"attempt": 1, "reason": "x", "retryable": True}, (Place.INFLIGHT, 0)),
        (EventType.REQUEUED, {"due_at": None, "reason": "x"}, (Place.WAITING, 0)),
        (
            EventType.ATTEMPTED,
            {"attempt": 1, "lease_until": "2026-01-01T00:00:30.000000Z"},
            (Place.INFLIGHT, to_ms(T0 + timedelta(seconds=30))),
        ),
    ],
)
def test_placement_after_each_kind_of_last_event(
    kind: EventType, data: dict[str, object], expected: tuple[Place, int]
) -> None:
    assert placement_after(stored(kind, version=2, data=dict(data))) == expected
