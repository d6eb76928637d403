"""The pure batch fold: what each event does to each read model."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger.errors import IllegalTransition
from ledger.events import EventType, StoredEvent, epoch_ms
from ledger.lifecycle import JobStatus
from ledger.lifecycle import fold as lifecycle_fold
from projections.fold import ENQUEUED, Changes, DayTotals, Fold, JobState, Totals
from projections.memory import MemoryProjection
from projections.stats import balances, stats_from_jobs, stats_from_rows
from tests.factories import T0, stored

E = EventType


def history(*types: EventType, job_id: str = "job-1", start: int = 1) -> list[StoredEvent]:
    events = []
    attempt = 0
    for offset, event_type in enumerate(types):
        if event_type is E.ATTEMPTED:
            attempt += 1
        version = offset + 1
        event = stored(event_type, job_id=job_id, version=version, position=start + offset)
        if event_type is not E.ENQUEUED and "attempt" in event.data:
            event.data["attempt"] = attempt
        if event_type is E.DEAD_LETTERED:
            event.data["reason"] = "attempts exhausted"
        events.append(event)
    return events


def stats_of(changes_stats: dict[tuple[str, str], Totals]) -> dict[tuple[str, str], int]:
    return {key: value.jobs for key, value in changes_stats.items()}


def fold_batch(fold: Fold, events: list[StoredEvent]) -> Changes:
    """Fold one batch and drain it (what the runner does per transaction)."""
    fold.fold_events(events)
    return fold.drain()


@pytest.mark.parametrize(
    ("types", "status", "stats"),
    [
        ([E.ENQUEUED], "waiting", {("KRW", ENQUEUED): 1, ("KRW", "waiting"): 1}),
        (
            [E.ENQUEUED, E.ATTEMPTED, E.COMPLETED],
            "completed",
            {("KRW", ENQUEUED): 1, ("KRW", "completed"): 1, ("KRW", "paid"): 1},
        ),
        (
            [E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.DEAD_LETTERED],
            "dead",
            {("KRW", ENQUEUED): 1, ("KRW", "dead"): 1},
        ),
        (
            [E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.REQUEUED, E.ATTEMPTED],
            "processing",
            {("KRW", ENQUEUED): 1, ("KRW", "processing"): 1},
        ),
    ],
)
def test_one_batch_from_nothing(
    types: list[EventType], status: str, stats: dict[tuple[str, str], int]
) -> None:
    changes = fold_batch(Fold(), history(*types))
    (state,) = changes.new_jobs
    assert state.status == status and state.to_job().status.value == status
    assert state.position == len(types)
    assert stats_of(changes.stats) == stats
    assert changes.position == len(types)
    assert state.idempotency_key == "key-1"


def test_state_moves_between_buckets_across_batches() -> None:
    events = history(E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.DEAD_LETTERED, E.REQUEUED)
    fold = Fold()
    first = fold_batch(fold, events[:4])
    assert [s.job_id for s in first.dlq] == ["job-1"]
    assert first.dlq[0].dead_letter_reason == "attempts exhausted"
    second = fold_batch(fold, events[4:])
    assert second.dlq_removed == ["job-1"] and second.dlq == []
    assert [s.job_id for s in second.changed_jobs] == ["job-1"] and second.new_jobs == []
    assert stats_of(second.stats) == {("KRW", "dead"): -1, ("KRW", "waiting"): 1}
    assert second.stats[("KRW", "waiting")].amount == 10_000


def test_completion_is_summed_on_its_utc_day() -> None:
    events = history(E.ENQUEUED, E.ATTEMPTED, E.COMPLETED)
    changes = fold_batch(Fold(), events)
    assert changes.daily == {(date(2026, 1, 1), "KRW"): DayTotals(1, 10_000)}


def test_a_batch_needs_the_jobs_it_did_not_enqueue() -> None:
    events = history(E.ENQUEUED, E.ATTEMPTED) + history(E.ENQUEUED, job_id="job-2", start=3)
    later = [stored(E.COMPLETED, job_id="job-1", version=3, position=4)]
    rows = [
        (e.position, e.job_id, e.version, e.type.value, e.data, e.occurred_at, e.actor)
        for e in later + events[2:]
    ]
    assert Fold().missing(rows[1:]) == []
    assert Fold().missing(rows) == ["job-1"]
    with pytest.raises(IllegalTransition):
        fold_batch(Fold(), later)


def test_an_illegal_event_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        fold_batch(Fold(), history(E.ENQUEUED, E.COMPLETED))
    fold = Fold()
    fold_batch(fold, history(E.ENQUEUED))
    with pytest.raises(IllegalTransition):  # a job is enqueued once
        fold_batch(fold, history(E.ENQUEUED, start=2))


def test_a_completed_job_is_forgotten_once_drained() -> None:
    fold = Fold()
    fold.fold_events(history(E.ENQUEUED, E.ATTEMPTED, E.COMPLETED))
    fold.fold_events(history(E.ENQUEUED, job_id="job-2", start=4))
    assert set(fold.jobs) == {"job-1", "job-2"}
    fold.drain()
    assert set(fold.jobs) == {"job-2"}  # only open jobs stay in memory
    with pytest.raises(IllegalTransition):  # and nothing follows a completion
        fold.fold_events([stored(E.ATTEMPTED, job_id="job-1", version=4, position=6)])


def test_forget_keeps_the_newest_jobs_and_a_forgotten_one_can_be_held_again() -> None:
    fold = Fold()
    for number in range(1, 6):
        fold.fold_events(history(E.ENQUEUED, job_id=f"job-{number}", start=number))
    changes = fold.drain()
    fold.forget(2)
    assert list(fold.jobs) == ["job-4", "job-5"]
    attempt = stored(E.ATTEMPTED, job_id="job-1", version=2, position=6)
    rows = [(6, "job-1", 2, "attempted", attempt.data, attempt.occurred_at, "w")]
    assert fold.missing(rows) == ["job-1"]
    (stored_row,) = [state for state in changes.new_jobs if state.job_id == "job-1"]
    fold.hold([stored_row])
    fold.fold(rows)
    after = fold.drain()
    assert [state.job_id for state in after.changed_jobs] == ["job-1"]
    assert stats_of(after.stats) == {("KRW", "waiting"): -1, ("KRW", "processing"): 1}


def test_job_state_to_job_matches_the_lifecycle_fold() -> None:
    events = history(E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.DEAD_LETTERED, E.REQUEUED, E.ATTEMPTED)
    fold = Fold()
    fold.fold_events(events)
    state: JobState = fold.jobs["job-1"]
    assert state.to_job() == lifecycle_fold(events)


def test_memory_projection_drops_emptied_buckets_and_dlq_rows() -> None:
    events = history(E.ENQUEUED, E.ATTEMPTED, E.FAILED, E.DEAD_LETTERED, E.REQUEUED)
    memory = MemoryProjection()
    for event in events:
        memory.apply([event])
    assert memory.dlq == {}
    assert set(memory.stats) == {("KRW", ENQUEUED), ("KRW", "waiting")}
    assert memory.position == 5


def test_delayed_is_waiting_with_a_future_due_time() -> None:
    enqueued = stored(E.ENQUEUED, job_id="a")
    enqueued.data["due_at"] = "2026-01-01T01:00:00.000000Z"
    memory = MemoryProjection()
    memory.apply([enqueued, stored(E.ENQUEUED, job_id="b", position=2)])
    before = memory.queue_stats(T0).as_api()["stats"]
    after = memory.queue_stats(T0 + timedelta(hours=2)).as_api()["stats"]
    assert (before["waiting"], before["delayed"], before["total"]) == (1, 1, 2)
    assert (after["waiting"], after["delayed"], after["total"]) == (2, 0, 2)
    assert before["amounts"]["KRW"] == {
        "waiting": 10_000,
        "delayed": 10_000,
        "processing": 0,
        "submitted": 0,
        "failed": 0,
        "dlq": 0,
        "completed": 0,
        "cancelled": 0,
        "enqueued": 20_000,
        "paid": 0,
        "reversed": 0,
        "refunded": 0,
        "net": 0,
        "overdue": 0,
    }


def test_stats_from_rows_moves_delayed_out_of_waiting() -> None:
    rows = [("KRW", "waiting", 3, 300), ("KRW", "dead", 1, 100), ("KRW", ENQUEUED, 4, 400)]
    result = stats_from_rows(rows, [("KRW", 2, 200)], T0, 9)
    api = result.as_api()
    assert api["stats"]["waiting"] == 1 and api["stats"]["delayed"] == 2
    assert api["stats"]["dlq"] == 1 and api["stats"]["total"] == 4
    assert api["position"] == 9 and api["status"] == "healthy"
    assert result.as_api("degraded")["status"] == "degraded"
    assert api["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert all(balance.balanced for balance in balances(result))


def test_conservation_reports_the_missing_amount() -> None:
    rows = [("USD", "waiting", 1, 100), ("USD", ENQUEUED, 2, 250)]
    (balance,) = balances(stats_from_rows(rows, [], T0, 2))
    assert not balance.balanced
    assert balance.difference == Totals(1, 150)
    assert balance.as_dict()["difference"] == 150


def test_stats_from_jobs_counts_every_job_once() -> None:
    memory = MemoryProjection()
    memory.apply(history(E.ENQUEUED, E.ATTEMPTED, E.COMPLETED))
    result = stats_from_jobs([r.job for r in memory.jobs.values()], T0, 3)
    assert result.count("completed") == 1 and result.total == 1
    assert memory.jobs["job-1"].job.status is JobStatus.COMPLETED


def test_epoch_ms_is_exact() -> None:
    assert epoch_ms(T0 + timedelta(microseconds=1999)) == 1_767_225_600_001
