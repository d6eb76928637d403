"""The log's contract (``ledger.ports.EventLog``): one suite, every implementation.

Runs on SQLite and PostgreSQL (``EventStore``) and on the in-memory twin
(``tests.memory.MemoryLog``); a new implementation passes it or is not one.
What only SQL has (triggers, roles, COPY, driver errors) stays in
``tests/integration/test_store*.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from ledger.db import create_engine
from ledger.errors import ConcurrencyError, IdempotencyConflict
from ledger.events import GENESIS_HASH, EventType, NewEvent, StoredEvent, event_hash
from ledger.lifecycle import JobStatus, fold
from ledger.ports import EventLog
from ledger.request import canonical_json
from ledger.store import EventStore, LiveCheckpoint, StreamAppend, prepare_enqueue
from tests.backends import SqliteTemplate, database_url
from tests.factories import request
from tests.memory import MemoryLog

LOG_IMPLEMENTATIONS = ["sqlite", "postgres", "memory"]
ATTEMPT = NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "worker-1")
COMPLETE = NewEvent(EventType.COMPLETED, {"attempt": 1}, "worker-1")


@pytest.fixture(params=LOG_IMPLEMENTATIONS)
def event_log(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: SqliteTemplate
) -> Iterator[EventLog]:
    if request.param == "memory":
        yield MemoryLog()
        return
    with database_url(str(request.param), tmp_path, sqlite_template) as url:
        engine = create_engine(url)
        yield EventStore(engine)
        engine.dispose()


def enqueue(log: EventLog, key: str = "key-1", **overrides: object) -> str:
    (result,) = log.enqueue_many([request(idempotency_key=key, **overrides)], max_attempts=3)
    assert result.created
    return result.job_id


def every_event(log: EventLog) -> list[StoredEvent]:
    """The whole log, in position order, through the port's own reads."""
    job_ids = list(dict.fromkeys(job_id for _p, job_id, _t in log.changes_after(0, 10**6)))
    streams = log.read_streams(job_ids).values()
    return sorted((e for stream in streams for e in stream), key=lambda e: e.position)


def test_append_and_read_round_trip(event_log: EventLog) -> None:
    job_id = enqueue(event_log, metadata={"qr": "토큰 ✓", "n": [1, 2.5, None]})
    written = event_log.append(job_id, 1, [ATTEMPT, COMPLETE])
    events = event_log.read_stream(job_id)
    assert events[1:] == written
    assert [e.type for e in events] == ["enqueued", "attempted", "completed"]
    assert [e.version for e in events] == [1, 2, 3]
    assert events[0].data["request"]["metadata"] == {"qr": "토큰 ✓", "n": [1, 2.5, None]}
    assert events[0].idempotency_key == "key-1"
    assert events[1].actor == "worker-1"
    job = fold(events)
    assert job is not None and job.status is JobStatus.COMPLETED


def test_positions_are_contiguous_chained_and_time_never_goes_back(event_log: EventLog) -> None:
    for n in range(4):
        job_id = enqueue(event_log, key=f"k{n}")
        event_log.append(job_id, 1, [ATTEMPT])
    events = every_event(event_log)
    assert [e.position for e in events] == list(range(1, 9))
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    prev = GENESIS_HASH
    for event in events:
        assert event.prev_hash == prev
        assert event.hash == event_hash(
            prev_hash=prev,
            position=event.position,
            job_id=event.job_id,
            version=event.version,
            event_type=event.type.value,
            data_json=canonical_json(event.data).decode(),
            occurred_at=event.occurred_at,
            actor=event.actor,
            idempotency_key=event.idempotency_key,
        )
        prev = event.hash
    head = event_log.head()
    assert (head.position, head.hash, head.occurred_at) == (8, prev, times[-1])


def test_an_empty_log_has_the_genesis_head(event_log: EventLog) -> None:
    head = event_log.head()
    assert (head.position, head.hash) == (0, GENESIS_HASH)
    assert event_log.changes_after(0) == []
    assert event_log.read_stream("nobody") == []


def test_a_stale_append_is_refused_and_writes_nothing(event_log: EventLog) -> None:
    job_id = enqueue(event_log)
    with pytest.raises(ConcurrencyError) as caught:
        event_log.append(job_id, 0, [ATTEMPT])
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert event_log.head().position == 1


def test_append_many_is_all_or_nothing_unless_stale_ones_are_skipped(event_log: EventLog) -> None:
    a, b = enqueue(event_log, "a"), enqueue(event_log, "b")
    appends = [StreamAppend(a, 1, [ATTEMPT]), StreamAppend(b, 5, [ATTEMPT])]
    with pytest.raises(ConcurrencyError):
        event_log.append_many(appends)
    assert event_log.head().position == 2
    result = event_log.append_many(appends, skip_stale=True)
    assert [(e.job_id, e.version) for e in result.events] == [(a, 2)]
    assert [error.job_id for error in result.rejected] == [b]
    with pytest.raises(ValueError):
        event_log.append_many([StreamAppend(a, 2, [COMPLETE]), StreamAppend(a, 2, [COMPLETE])])


def test_one_writer_per_version(event_log: EventLog) -> None:
    job_id = enqueue(event_log)
    start = threading.Barrier(8)

    def attempt(_n: int) -> bool:
        start.wait()
        try:
            event_log.append(job_id, 1, [ATTEMPT])
        except ConcurrencyError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(attempt, range(8))) == [False] * 7 + [True]
    assert [e.version for e in event_log.read_stream(job_id)] == [1, 2]


def test_enqueue_is_idempotent_per_key(event_log: EventLog) -> None:
    first = enqueue(event_log)
    (again,) = event_log.enqueue_many([request()], max_attempts=3)
    assert (again.job_id, again.created) == (first, False)
    with pytest.raises(IdempotencyConflict) as caught:
        event_log.enqueue_many([request(idempotency_key="new"), request(amount=1)], max_attempts=3)
    assert caught.value.job_id == first
    assert event_log.head().position == 1  # the whole batch was refused


def test_enqueue_each_fails_a_conflicting_key_alone(event_log: EventLog) -> None:
    first = enqueue(event_log)
    prepared = [
        prepare_enqueue(request(idempotency_key="x"), max_attempts=2),
        prepare_enqueue(request(amount=1), max_attempts=2),
        prepare_enqueue(request(), max_attempts=2),
        prepare_enqueue(request(idempotency_key="x"), max_attempts=2),
    ]
    new, conflict, known, repeated = event_log.enqueue_each(prepared)
    assert isinstance(conflict, IdempotencyConflict) and conflict.job_id == first
    assert not isinstance(new, IdempotencyConflict) and new.created
    assert not isinstance(known, IdempotencyConflict) and (known.job_id, known.created) == (
        first,
        False,
    )
    assert not isinstance(repeated, IdempotencyConflict) and repeated.job_id == new.job_id
    assert event_log.head().position == 2


def test_a_delay_is_due_after_the_events_own_time(event_log: EventLog) -> None:
    (result,) = event_log.enqueue_many([request()], max_attempts=1, delay=timedelta(minutes=5))
    (event,) = event_log.read_stream(result.job_id)
    job = fold([event])
    assert job is not None and job.due_at == event.occurred_at + timedelta(minutes=5)


def test_stream_reads_leave_unknown_jobs_out(event_log: EventLog) -> None:
    a, b = enqueue(event_log, "a"), enqueue(event_log, "b")
    event_log.append(a, 1, [ATTEMPT])
    streams = event_log.read_streams([a, b, "nobody"])
    assert {job_id: [e.version for e in s] for job_id, s in streams.items()} == {a: [1, 2], b: [1]}
    latest = event_log.latest_events([a, b, "nobody", a])
    assert {job_id: e.version for job_id, e in latest.items()} == {a: 2, b: 1}


def test_unfinished_gives_the_last_event_of_each_open_job(event_log: EventLog) -> None:
    done, open_, later = enqueue(event_log, "d"), enqueue(event_log, "o"), enqueue(event_log, "l")
    event_log.append(done, 1, [ATTEMPT, COMPLETE])
    event_log.append(open_, 1, [ATTEMPT])
    until = event_log.head().position
    event_log.append(later, 1, [ATTEMPT])
    found = event_log.unfinished(0, until=until)
    assert [(e.job_id, e.version) for e in found] == [(open_, 2)]  # ``later`` moved after
    everything = event_log.unfinished()
    assert [(e.job_id, e.version) for e in everything] == [(open_, 2), (later, 2)]
    assert [e.job_id for e in event_log.unfinished(everything[0].position)] == [later]
    assert len(event_log.unfinished(0, limit=1)) == 1


def test_changes_after_is_a_cheap_tail(event_log: EventLog) -> None:
    a = enqueue(event_log, "a")
    event_log.append(a, 1, [ATTEMPT, COMPLETE])
    assert event_log.changes_after(1) == [
        (2, a, EventType.ATTEMPTED),
        (3, a, EventType.COMPLETED),
    ]
    assert event_log.changes_after(0, limit=1) == [(1, a, EventType.ENQUEUED)]


def test_new_jobs_take_their_ids_from_new_job_id(event_log: EventLog) -> None:
    ids = iter(["job-a", "job-b"])
    event_log.new_job_id = lambda: next(ids)
    assert [enqueue(event_log, key) for key in ("1", "2")] == ["job-a", "job-b"]


def test_the_recovery_checkpoint_moves_forward_only(event_log: EventLog) -> None:
    assert event_log.live_checkpoint() is None
    for n in range(9):  # a log with 9 events: checkpoints up to position 9 stand
        enqueue(event_log, f"k{n}")
    assert event_log.save_live_checkpoint(5, ["job-b", "job-a", "job-b"])
    checkpoint = event_log.live_checkpoint()
    assert checkpoint is not None
    assert (checkpoint.position, sorted(checkpoint.job_ids)) == (5, ["job-a", "job-b"])
    assert not event_log.save_live_checkpoint(4, ["job-c"])  # an older recovery loses
    assert not event_log.save_live_checkpoint(5, ["job-c"])
    assert event_log.save_live_checkpoint(9, [])  # nothing unfinished any more
    assert event_log.live_checkpoint() == LiveCheckpoint(9, [])
    assert event_log.save_live_checkpoint(12, [])  # past the head: void, replaced below
    assert event_log.save_live_checkpoint(3, ["job-d"])
    assert event_log.live_checkpoint() == LiveCheckpoint(3, ["job-d"])


def test_submitted_due_lists_payouts_the_provider_holds_past_their_deadline(
    event_log: EventLog,
) -> None:
    held, confirmed = enqueue(event_log, "held"), enqueue(event_log, "confirmed")
    submit = NewEvent(
        EventType.SUBMITTED,
        {"attempt": 1, "reference": "po-1", "due_at": None},
        "worker-1",
        due_in=timedelta(minutes=10),
    )
    event_log.append(held, 1, [ATTEMPT, submit])
    event_log.append(confirmed, 1, [ATTEMPT, submit, COMPLETE])
    now = event_log.head().occurred_at
    assert now is not None
    assert event_log.submitted_due(now) == []
    (due,) = event_log.submitted_due(now + timedelta(minutes=11))
    assert (due.job_id, due.type, due.version) == (held, EventType.SUBMITTED, 3)
    assert event_log.submitted_due(now + timedelta(minutes=11), after=due.position) == []
