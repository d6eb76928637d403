"""``ledger.scripts``: the public API scripts use, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ledger.audit.queries import EventFilters, iter_events
from ledger.errors import (
    InvalidFilter,
    InvalidRequest,
    InvalidStatement,
    LedgerError,
    NaiveTime,
    PositionPastHead,
    SchemaNotReady,
)
from ledger.events import EventType, StoredEvent
from ledger.scripts import Connection, StatementLine, connect
from ledger.settings import Settings
from ledger.store import EventStore
from projections import queries
from projections.runner import Projector
from tests.audit_support import build_log
from tests.factories import request


@pytest.fixture
def log(store: EventStore) -> list[StoredEvent]:
    build_log(store, 8)
    return list(store.read_all())


@pytest.fixture
def conn(db_url: str, log: list[StoredEvent]) -> Iterator[Connection]:
    with connect(db_url) as connection:
        yield connection


def test_events_are_the_log_in_order_in_any_page_size(
    conn: Connection, log: list[StoredEvent]
) -> None:
    assert list(conn.events()) == log
    assert list(conn.events(page_size=1)) == log
    assert list(conn.events(after=5, page_size=3)) == log[5:]
    assert conn.head() == log[-1].position


def test_each_filter_selects_what_the_auditors_export_selects(
    conn: Connection, engine: sa.Engine, log: list[StoredEvent]
) -> None:
    def exported(filters: EventFilters) -> list[int]:
        return [event.position for event in iter_events(engine, filters)]

    def read(**filters: object) -> list[int]:
        return [event.position for event in conn.events(page_size=2, **filters)]  # type: ignore[arg-type]

    assert read(user="user-1") == exported(EventFilters(user_id="user-1"))
    assert read(place="place-0", mission="mission-2") == exported(
        EventFilters(place_id="place-0", mission_id="mission-2")
    )
    completed = [e.position for e in log if e.type is EventType.COMPLETED]
    assert read(type="completed") == completed
    assert read(type=[EventType.COMPLETED, "enqueued"]) == [
        e.position for e in log if e.type in (EventType.COMPLETED, EventType.ENQUEUED)
    ]
    job = log[3].job_id
    assert read(job=job) == [e.position for e in log if e.job_id == job]
    middle = log[len(log) // 2].occurred_at
    assert read(since=middle) == [e.position for e in log if e.occurred_at >= middle]
    assert read(until=middle) == [e.position for e in log if e.occurred_at < middle]
    assert read(user="nobody") == []


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"users": "user-1"}, InvalidFilter),
        ({"type": "paid"}, InvalidFilter),
        ({"since": datetime(2026, 1, 1)}, NaiveTime),
        ({"until": "2026-01-01"}, InvalidFilter),
        ({"after": -1}, InvalidRequest),
        ({"after": 10_000}, PositionPastHead),
        ({"page_size": 0}, InvalidRequest),
        (
            {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
            InvalidRequest,
        ),
    ],
)
def test_bad_input_is_a_ledger_error_before_anything_is_read(
    conn: Connection, filters: dict[str, object], error: type[LedgerError]
) -> None:
    with pytest.raises(error) as raised:
        conn.events(**filters)  # type: ignore[arg-type]
    assert isinstance(raised.value, LedgerError) and raised.value.message


def test_state_as_of_the_head_equals_the_caught_up_projections(
    conn: Connection, engine: sa.Engine, store: EventStore, log: list[StoredEvent]
) -> None:
    Projector(store).catch_up()
    state = conn.state()
    assert state.position == log[-1].position
    assert state.stats() == queries.stats(engine, state.moment)
    assert state.totals() == queries.totals(engine)
    seoul = ZoneInfo("Asia/Seoul")
    assert state.totals(seoul) == queries.totals(engine, zone=seoul)
    assert state.dlq() == queries.dlq_page(engine).jobs
    for job_id in {event.job_id for event in log}:
        assert state.job(job_id) == queries.job(engine, job_id)
    assert state.job("no-such-job") is None
    assert all(balance.balanced for balance in state.balances())


def test_state_as_of_a_position_and_a_time_is_the_prefix(
    conn: Connection, log: list[StoredEvent]
) -> None:
    middle = log[len(log) // 2]
    by_position = conn.state(middle.position)
    by_time = conn.state(middle.occurred_at)
    expected_jobs = {e.job_id for e in log[: middle.position]}
    assert by_position.job_count == len(expected_jobs)
    assert by_time.position >= middle.position
    assert by_time.position == max(e.position for e in log if e.occurred_at <= middle.occurred_at)
    assert conn.state(0).job_count == 0
    with pytest.raises(PositionPastHead):
        conn.state(log[-1].position + 1)
    with pytest.raises(NaiveTime):
        conn.state(datetime(2026, 1, 1))


def test_verify_and_reconcile_return_the_reports_the_cli_prints(conn: Connection) -> None:
    result = conn.verify()
    assert result.ok and result.checked == conn.head()
    report = conn.reconcile()
    assert report.ok
    assert [check.name for check in report.checks] == ["projections", "conservation"]


def test_reconcile_with_a_statement_finds_the_differences(
    conn: Connection, log: list[StoredEvent]
) -> None:
    completed = [e for e in log if e.type is EventType.COMPLETED]
    stream = {e.job_id: e for e in log if e.type is EventType.ENQUEUED}
    lines = [
        StatementLine(
            line=n + 2,
            idempotency_key=str(stream[e.job_id].idempotency_key),
            amount=stream[e.job_id].data["request"]["amount"],
            currency=stream[e.job_id].data["request"]["currency"],
            settled_at=e.occurred_at,
        )
        for n, e in enumerate(completed)
    ]
    assert conn.reconcile(lines).ok
    gap = [lines[0], *lines[2:]]
    diff = conn.statement_diff(gap)
    assert [s.job_id for s in diff.missing_from_statement] == [completed[1].job_id]
    assert conn.statement_diff(lines[1:]).ok  # the statement's own span starts later
    assert not conn.reconcile(lines[1:], start=date(2000, 1, 1), end=date(2999, 1, 1)).ok
    with pytest.raises(NaiveTime):
        conn.reconcile(lines, start=datetime(2026, 1, 1))
    with pytest.raises(InvalidRequest):
        conn.reconcile(start=date(2026, 1, 1))


def test_a_missing_statement_file_is_a_ledger_error(conn: Connection, tmp_path: Path) -> None:
    with pytest.raises(InvalidStatement):
        conn.reconcile(tmp_path / "missing.csv")


def test_follow_hands_every_event_once_in_batches(
    conn: Connection, store: EventStore, log: list[StoredEvent]
) -> None:
    seen: list[Sequence[StoredEvent]] = []
    last = conn.follow(0, seen.append, page_size=3, until_head=True)
    assert last == log[-1].position
    assert [e for batch in seen for e in batch] == log
    assert all(0 < len(batch) <= 3 for batch in seen)
    later: list[Sequence[StoredEvent]] = []

    def stop() -> bool:
        # the first time round nothing is new: a job is enqueued while the script follows
        if not later and store.head().position == last:
            store.enqueue(request(idempotency_key="late"), max_attempts=1)
        return bool(later)

    assert conn.follow(last, later.append, poll_seconds=0, stop=stop) == last + 1
    assert [e.idempotency_key for batch in later for e in batch] == ["late"]
    with pytest.raises(PositionPastHead):
        conn.follow(last + 2, later.append, until_head=True)


def test_the_connection_cannot_write(conn: Connection) -> None:
    # the engine is internal; a script has no way to it, but even so the database refuses
    with pytest.raises(sa.exc.DBAPIError), conn._engine.begin() as sql:
        sql.exec_driver_sql("DELETE FROM projection_checkpoints")


def test_settings_and_a_missing_schema(db_url: str, tmp_path: Path) -> None:
    with connect(settings=Settings(database_url=db_url)) as connection:
        assert connection.head() == 0
    with pytest.raises(SchemaNotReady), connect(f"sqlite:///{tmp_path}/empty.db"):
        pass
