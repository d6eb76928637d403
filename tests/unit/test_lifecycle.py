from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import IllegalTransition
from ledger.events import EventType
from ledger.lifecycle import TRANSITIONS, JobStatus, fold, next_status
from tests.factories import stored

E, S = EventType, JobStatus

LEGAL = {
    (None, E.ENQUEUED): S.WAITING,
    (S.WAITING, E.ATTEMPTED): S.PROCESSING,
    (S.PROCESSING, E.COMPLETED): S.COMPLETED,
    (S.PROCESSING, E.FAILED): S.FAILED,
    (S.FAILED, E.REQUEUED): S.WAITING,
    (S.FAILED, E.DEAD_LETTERED): S.DEAD,
    (S.DEAD, E.REQUEUED): S.WAITING,
    (S.PROCESSING, E.SUBMITTED): S.SUBMITTED,
    (S.SUBMITTED, E.COMPLETED): S.COMPLETED,
    (S.SUBMITTED, E.FAILED): S.FAILED,
    (S.COMPLETED, E.REQUEUED): S.WAITING,
    (S.WAITING, E.CANCELLED): S.CANCELLED,
    (S.FAILED, E.CANCELLED): S.CANCELLED,
    (S.DEAD, E.CANCELLED): S.CANCELLED,
    (S.SUBMITTED, E.CANCELLED): S.CANCELLED,
    (S.COMPLETED, E.REVERSED): S.COMPLETED,
    (S.COMPLETED, E.REFUNDED): S.COMPLETED,
}
ALL_PAIRS = list(itertools.product([None, *JobStatus], EventType))


def test_the_table_is_exactly_the_design() -> None:
    assert dict(TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("state", "event"), [p for p in ALL_PAIRS if p in LEGAL])
def test_every_legal_transition(state: JobStatus | None, event: EventType) -> None:
    assert next_status("j", state, event) is LEGAL[(state, event)]


@pytest.mark.parametrize(("state", "event"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_every_illegal_transition_is_refused(state: JobStatus | None, event: EventType) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_status("j", state, event)
    assert event.value in str(caught.value)


def test_cancelled_is_final() -> None:
    for event in EventType:
        with pytest.raises(IllegalTransition):
            next_status("j", S.CANCELLED, event)


def test_only_money_records_and_a_new_round_follow_completed() -> None:
    allowed = {event for event in EventType if (S.COMPLETED, event) in LEGAL}
    assert allowed == {E.REVERSED, E.REFUNDED, E.REQUEUED}


def test_fold_tracks_attempts_errors_and_budget() -> None:
    history = [E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.DEAD_LETTERED, E.REQUEUED, E.ATTEMPTED]
    events = [stored(t, version=v) for v, t in enumerate(history, start=1)]
    job = fold(events)
    assert job is not None
    assert job.status is S.PROCESSING
    assert job.attempts == 2
    assert job.round_attempts == 1  # requeue from the DLQ gives a fresh budget
    assert job.last_error == "boom"
    assert job.version == 6
    assert job.amount == 10_000 and job.currency == "KRW"


def test_retry_requeue_keeps_the_budget() -> None:
    history = [E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.REQUEUED, E.ATTEMPTED, E.COMPLETED]
    job = fold(stored(t, version=v) for v, t in enumerate(history, start=1))
    assert job is not None
    assert job.status is S.COMPLETED
    assert (job.attempts, job.round_attempts) == (2, 2)
    assert job.completed_at is not None


def test_empty_stream_folds_to_none() -> None:
    assert fold([]) is None


def _walk(choices: list[int]) -> list[EventType]:
    """A legal path through the table, steered by ``choices``."""
    path, state = [E.ENQUEUED], S.WAITING
    for choice in choices:
        options = [e for (s, e) in LEGAL if s is state]
        if not options:
            break
        event = options[choice % len(options)]
        path.append(event)
        state = LEGAL[(state, event)]
    return path


@given(st.lists(st.integers(min_value=0, max_value=10), max_size=40))
def test_random_legal_sequences_fold(choices: list[int]) -> None:
    path = _walk(choices)
    job = fold(stored(t, version=v) for v, t in enumerate(path, start=1))
    assert job is not None
    assert job.version == len(path)
    assert job.attempts == path.count(E.ATTEMPTED)


@given(
    st.lists(st.integers(min_value=0, max_value=10), max_size=20),
    st.sampled_from(list(EventType)),
)
def test_random_illegal_step_is_refused(choices: list[int], bad: EventType) -> None:
    path = _walk(choices)
    state = None
    for event in path:
        state = LEGAL[(state, event)]
    if (state, bad) in LEGAL:
        return
    events = [stored(t, version=v) for v, t in enumerate([*path, bad], start=1)]
    with pytest.raises(IllegalTransition):
        fold(events)
