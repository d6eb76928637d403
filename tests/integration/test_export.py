"""Auditor export: filters, paging, and exact CSV / JSON Lines round-trips, on both backends."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import orjson
import pytest
from rich.console import Console
from sqlalchemy.engine import Engine

from ledger.audit.export import ExportFormat, write_events
from ledger.audit.queries import COLUMNS, EventFilters, fetch_events, iter_events
from ledger.events import EventType, StoredEvent, format_time
from ledger.store import EventStore
from tests.audit_support import build_log


@pytest.fixture
def log(store: EventStore) -> list[StoredEvent]:
    build_log(store, 6)
    return list(store.read_all())


def requests_by_job(log: list[StoredEvent]) -> dict[str, dict[str, object]]:
    return {e.job_id: e.data["request"] for e in log if e.type is EventType.ENQUEUED}


def expected_record(event: StoredEvent, request: dict[str, object]) -> dict[str, object]:
    return {
        "position": event.position,
        "occurred_at": format_time(event.occurred_at),
        "job_id": event.job_id,
        "version": event.version,
        "type": event.type.value,
        "actor": event.actor,
        "idempotency_key": request["idempotency_key"],
        "user_id": request["user_id"],
        "place_id": request["place_id"],
        "mission_id": request["mission_id"],
        "amount": request["amount"],
        "currency": request["currency"],
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def test_jsonl_round_trips_every_event(engine: Engine, log: list[StoredEvent]) -> None:
    out = io.StringIO()
    count = write_events(iter_events(engine, EventFilters(), page_size=4), ExportFormat.JSONL, out)
    assert count == len(log)
    lines = out.getvalue().splitlines()
    requests = requests_by_job(log)
    for line, event in zip(lines, log, strict=True):
        record = orjson.loads(line)
        assert list(record) == list(COLUMNS)
        assert record == expected_record(event, requests[event.job_id])
    first = orjson.loads(lines[0])
    assert first["data"]["request"]["metadata"]["qr_token"] == "토큰-0 ✓"
    assert isinstance(first["amount"], int)


def test_csv_round_trips_every_event(engine: Engine, log: list[StoredEvent]) -> None:
    out = io.StringIO()
    write_events(iter_events(engine, EventFilters()), ExportFormat.CSV, out)
    reader = csv.DictReader(io.StringIO(out.getvalue()))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    requests = requests_by_job(log)
    rows = list(reader)
    assert len(rows) == len(log)
    for row, event in zip(rows, log, strict=True):
        expected = expected_record(event, requests[event.job_id])
        assert orjson.loads(row.pop("data")) == expected.pop("data")
        assert row == {name: str(value) for name, value in expected.items()}
    # the stored canonical text is exported as is
    assert rows[0]["hash"] == log[0].hash


def test_filters_by_the_jobs_user_place_and_mission(engine: Engine, log: list[StoredEvent]) -> None:
    requests = requests_by_job(log)
    for field in ("user_id", "place_id", "mission_id"):
        value = requests[log[1].job_id][field]
        found = list(iter_events(engine, EventFilters(**{field: value})))
        jobs = {job for job, request in requests.items() if request[field] == value}
        assert [e.position for e in found] == [e.position for e in log if e.job_id in jobs]
        assert found and all(getattr(e, field) == value for e in found)


def test_filters_by_type_and_time_window(engine: Engine, log: list[StoredEvent]) -> None:
    completed = list(iter_events(engine, EventFilters(types=(EventType.COMPLETED,))))
    assert [e.position for e in completed] == [e.position for e in log if e.type == "completed"]
    middle = log[len(log) // 2].occurred_at
    window = EventFilters(from_time=middle, to_time=middle + timedelta(microseconds=1))
    assert [e.position for e in iter_events(engine, window)] == [
        e.position for e in log if e.occurred_at == middle
    ]
    before = list(iter_events(engine, EventFilters(to_time=middle)))
    after = list(iter_events(engine, EventFilters(from_time=middle)))
    assert len(before) + len(after) == len(log)


def test_paging_after_and_limit(engine: Engine, log: list[StoredEvent]) -> None:
    page = fetch_events(engine, EventFilters(), after=3, limit=5)
    assert [e.position for e in page] == [4, 5, 6, 7, 8]
    capped = list(iter_events(engine, EventFilters(), after=3, limit=7, page_size=2))
    assert [e.position for e in capped] == list(range(4, 11))
    user = EventFilters(user_id="user-1")
    all_user = [e.position for e in iter_events(engine, user)]
    paged = [e.position for e in iter_events(engine, user, page_size=1)]
    assert paged == all_user


def test_table_lists_every_event(engine: Engine, log: list[StoredEvent]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    count = write_events(iter_events(engine, EventFilters()), ExportFormat.TABLE, out, console)
    text = out.getvalue()
    assert count == len(log)
    assert log[0].job_id in text and "1,000 KRW" in text  # as a person reads it
    assert text.count("position") == 1  # one header, however many chunks
