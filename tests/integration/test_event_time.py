"""The database stands behind event time: no backdating, and "as of T" is a prefix.

An attacker who may append (the app role) writes a chained, lifecycle-legal payout
dated before the log began. The database refuses it (PostgreSQL and SQLite
triggers); written anyway with the triggers off, ``verify`` names it, and the
as-of views leave it out, because a time resolves to a log position.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.audit.checkpoint import anchors, take_checkpoint
from ledger.audit.verify import ProblemKind, verify_log
from ledger.store import EventStore
from projections.as_of import stats_as_of
from tests.audit_support import Attacker, build_log, forged_payout
from tests.factories import request


def test_the_database_refuses_an_event_earlier_than_the_one_before(store: EventStore) -> None:
    build_log(store, 4)
    attacker = Attacker(store.engine)
    rows = attacker.rows()
    forged = forged_payout(rows[-1], rows[0]["occurred_at"] - timedelta(days=6))
    with pytest.raises(sa.exc.IntegrityError, match="runs backwards"):
        attacker.insert(forged[0])
    assert store.head().position == rows[-1]["position"]


def test_a_batch_that_runs_backwards_inside_itself_is_refused(store: EventStore) -> None:
    build_log(store, 2)
    attacker = Attacker(store.engine)
    head = attacker.rows()[-1]
    forged = forged_payout(head, head["occurred_at"] + timedelta(microseconds=2))
    forged[1] = {**forged[1], "occurred_at": head["occurred_at"]}  # behind forged[0]
    with pytest.raises(sa.exc.IntegrityError, match="runs backwards"), store.engine.begin() as c:
        c.execute(sa.insert(sa.table("events", *(sa.column(k) for k in forged[0]))), forged)
    assert store.head().position == head["position"]


def test_honest_appends_at_one_time_pass(store: EventStore) -> None:
    """A batch shares one time, and a clock stepped back is held at the head's time."""
    build_log(store, 4)
    head = store.head()
    assert head.occurred_at is not None
    stepped_back = head.occurred_at - timedelta(hours=1)
    behind = EventStore(store.engine, clock=lambda: stepped_back)
    behind.enqueue_many([request(idempotency_key=f"b{n}") for n in range(3)], max_attempts=2)
    assert [e.occurred_at for e in behind.read_all(after=head.position)] == [head.occurred_at] * 3
    assert verify_log(store.engine).ok


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "text", ["2026-01-01T00:00:00.000000", "2026-01-01 00:00:00", "2026-01-01 00:00:00+00:00"]
)
def test_sqlite_refuses_a_time_in_another_text_form(engine: Engine, text: str) -> None:
    attacker = Attacker(engine)
    (row,) = forged_payout(None, datetime(2026, 1, 1, tzinfo=UTC))[:1]
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    values = tuple(text if k == "occurred_at" else v for k, v in row.items())
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO events ({columns}) VALUES ({marks})", values)
    assert attacker.rows() == []


def backdated_log(store: EventStore) -> tuple[int, dict[str, object]]:
    """A real log, then a forged payout six days before its first event (triggers off)."""
    if store.head().position == 0:
        build_log(store, 8)
    attacker = Attacker(store.engine)
    rows = attacker.rows()
    attacker.disable_triggers()
    for row in forged_payout(rows[-1], rows[0]["occurred_at"] - timedelta(days=6)):
        attacker.insert(row)
    return int(rows[-1]["position"]), rows[0]


def test_verify_names_a_backdated_append(store: EventStore) -> None:
    build_log(store, 8)
    checkpoint = take_checkpoint(store.engine, datetime.now(UTC))
    honest_head, _first = backdated_log(store)
    for workers in (1, 2):
        result = verify_log(store.engine, workers=workers, page_size=4)
        assert result.problem is not None
        assert (result.problem.position, result.problem.kind) == (
            honest_head + 1,
            ProblemKind.BACKDATED,
        )
    with_checkpoint = verify_log(store.engine, anchors=anchors(checkpoint))
    assert with_checkpoint.problem is not None
    assert with_checkpoint.problem.kind is ProblemKind.BACKDATED


def test_as_of_a_time_is_the_prefix_before_the_first_later_event(store: EventStore) -> None:
    honest_head, first = backdated_log(store)
    when = first["occurred_at"]
    assert isinstance(when, datetime)
    # the forged events are dated before ``when`` but stand after later events
    at = store.position_at(when)
    assert at < honest_head
    assert all(e.position <= at for e in store.read_all(until_time=when))
    assert "forged-payout" not in {e.idempotency_key for e in store.read_all(until_time=when)}
    assert store.position_at(when - timedelta(days=30)) == 0
    assert store.position_at(when + timedelta(days=30)) == honest_head + 3


def test_stats_as_of_a_past_day_leave_a_backdated_payout_out(store: EventStore) -> None:
    honest_head, first = backdated_log(store)
    when = first["occurred_at"]
    assert isinstance(when, datetime)
    honest_end = store.read_all(after=honest_head - 1, until_position=honest_head)
    last_honest_time = next(iter(honest_end)).occurred_at
    # any past moment, even one after the forged events' own date: they are not in its prefix
    tick = timedelta(microseconds=1)
    for moment in (when, when + tick, last_honest_time - tick):
        stats = stats_as_of(store, moment)
        krw = stats.by_currency.get("KRW", {})
        assert all(totals.amount < 500_000_000 for totals in krw.values()), moment
    # as of now the forged payout is in the log (verify names it: backdated)
    assert stats_as_of(store, datetime.now(UTC)).position == honest_head + 3
