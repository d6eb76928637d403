"""The store's batched reads for the queue's hot paths, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from ledger.events import EventType, NewEvent
from ledger.store import EventStore, StreamAppend
from tests.factories import request


def _job(store: EventStore, key: str, *types: EventType) -> str:
    job_id = store.enqueue(request(idempotency_key=key), max_attempts=3).job_id
    events = [NewEvent(kind, {"attempt": 1}, "w") for kind in types]
    if events:
        store.append(job_id, 1, events)
    return job_id


def test_read_streams_equals_reading_each_stream(store: EventStore) -> None:
    done = _job(store, "a", EventType.ATTEMPTED, EventType.COMPLETED)
    waiting = _job(store, "b")
    running = _job(store, "c", EventType.ATTEMPTED)
    streams = store.read_streams([running, done, "no-such-job", waiting, done])
    assert set(streams) == {done, waiting, running}
    for job_id, events in streams.items():
        assert events == store.read_stream(job_id)


def test_latest_events_are_the_last_of_each_stream(store: EventStore) -> None:
    done = _job(store, "a", EventType.ATTEMPTED, EventType.COMPLETED)
    waiting = _job(store, "b")
    latest = store.latest_events([done, waiting, "no-such-job"])
    assert latest == {done: store.read_stream(done)[-1], waiting: store.read_stream(waiting)[0]}
    assert store.latest_events([]) == {}


def test_unfinished_is_the_last_event_of_every_job_not_completed(store: EventStore) -> None:
    _job(store, "done", EventType.ATTEMPTED, EventType.COMPLETED)
    waiting = _job(store, "waiting")
    running = _job(store, "running", EventType.ATTEMPTED)
    dead = _job(store, "dead", EventType.ATTEMPTED, EventType.FAILED, EventType.DEAD_LETTERED)
    first = store.unfinished(limit=2)
    last = first + store.unfinished(after=first[-1].position, limit=2)
    assert len(first) == 2 and store.unfinished(after=last[-1].position) == []
    assert {event.job_id: event.type for event in last} == {
        waiting: EventType.ENQUEUED,
        running: EventType.ATTEMPTED,
        dead: EventType.DEAD_LETTERED,
    }
    assert all(event == store.read_stream(event.job_id)[-1] for event in last)


def test_changes_after_is_the_tail_in_position_order(store: EventStore) -> None:
    first = _job(store, "a")
    second = _job(store, "b")
    store.append_many([StreamAppend(first, 1, [NewEvent(EventType.ATTEMPTED, {}, "w")])])
    assert store.changes_after(0) == [
        (1, first, EventType.ENQUEUED),
        (2, second, EventType.ENQUEUED),
        (3, first, EventType.ATTEMPTED),
    ]
    assert store.changes_after(1, limit=1) == [(2, second, EventType.ENQUEUED)]
    assert store.changes_after(3) == []


def test_unfinished_until_leaves_out_jobs_changed_later(store: EventStore) -> None:
    waiting = _job(store, "waiting")
    changed = _job(store, "changed")
    head = store.head().position
    store.append(changed, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "w")])
    _job(store, "new")
    assert [event.job_id for event in store.unfinished(until=head)] == [waiting]
