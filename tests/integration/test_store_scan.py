"""``EventStore.scan``: the raw pages replays read, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import Connection

from ledger.errors import DatabaseUnavailable
from ledger.events import EventType, NewEvent
from ledger.store import EventStore, StreamAppend
from tests.factories import request

ATTEMPT = NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "worker-1")


def fill(store: EventStore, jobs: int) -> None:
    """``jobs`` jobs, each enqueued then attempted: ``2 * jobs`` events."""
    ids = [
        store.enqueue(request(idempotency_key=f"scan-{n}"), max_attempts=3).job_id
        for n in range(jobs)
    ]
    store.append_many([StreamAppend(job_id, 1, [ATTEMPT]) for job_id in ids])


def scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scan-read")]


@pytest.mark.parametrize("page_size", [1, 3, 4, 7, 100])
def test_scan_gives_every_event_once_in_order(store: EventStore, page_size: int) -> None:
    fill(store, 4)
    pages = list(store.scan(page_size=page_size))
    assert all(0 < len(page) <= page_size for page in pages)
    rows = [row for page in pages for row in page]
    assert [row[0] for row in rows] == [e.position for e in store.read_all()]
    assert [(row[1], row[2], row[3]) for row in rows] == [
        (e.job_id, e.version, e.type.value) for e in store.read_all()
    ]
    assert not scan_threads()


def test_scan_bounds(store: EventStore) -> None:
    fill(store, 4)
    after_two = [row[0] for page in store.scan(2, page_size=3) for row in page]
    assert after_two == [3, 4, 5, 6, 7, 8]
    upto = [row[0] for page in store.scan(2, until_position=6, page_size=2) for row in page]
    assert upto == [3, 4, 5, 6]
    assert list(store.scan(8)) == []


def test_scan_closed_early_leaves_no_thread(store: EventStore) -> None:
    fill(store, 4)
    pages = store.scan(page_size=2)
    assert [row[0] for row in next(pages)] == [1, 2]
    pages.close()
    assert not scan_threads()


def test_a_failed_page_read_raises_in_the_caller(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, 4)
    reading = store._reading
    calls = 0

    @contextmanager
    def flaky() -> Iterator[Connection]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseUnavailable("gone")
        with reading() as conn:
            yield conn

    monkeypatch.setattr(store, "_reading", flaky)
    pages = store.scan(page_size=3)
    assert [row[0] for row in next(pages)] == [1, 2, 3]
    with pytest.raises(DatabaseUnavailable):
        next(pages)
    pages.close()
    assert not scan_threads()
