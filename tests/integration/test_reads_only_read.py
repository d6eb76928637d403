"""Reads only read (issue 19, item 5): the projection tables plus the tail of the log.

A read answers what a full fold of the log answers, wherever the live
projections' checkpoint stands, without moving it or writing a row; it runs on a
connection that refuses every write; and it reports the log position it stands
at. One follower leads on PostgreSQL. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from ledger.db import create_engine
from ledger.http import create_app
from ledger.service import build_ledger
from ledger.settings import Settings
from ledger.store import EventStore
from projections import queries
from projections.leader import Leadership
from projections.queries import TotalsAsked
from projections.reads import ReadModels
from projections.runner import Projector, replay
from projections.schema import LIVE, SCRATCH
from projections.snapshot import read_snapshot
from tests.projection_logs import append_plan, seeded_plan

NOW = datetime.now(UTC)
ASKED = [
    TotalsAsked(),
    TotalsAsked(group_by=()),
    TotalsAsked(group_by=("user_id", "place_id")),
    TotalsAsked(group_by=("day", "mission_id"), currency="KRW"),
    TotalsAsked(start=date(2020, 1, 1), end=date(2100, 1, 1), zone=ZoneInfo("Asia/Seoul")),
]


def read_only_engine(db_url: str) -> Engine:
    """The same database through a connection that refuses every write."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return create_engine(f"sqlite:///file:{url.database}?mode=ro&uri=true")
    options = url.query.get("options", "")
    options = f"{options} -cdefault_transaction_read_only=on".strip()
    return create_engine(url.set(query={**url.query, "options": options}))


@pytest.fixture
def readonly(db_url: str) -> Iterator[EventStore]:
    engine = read_only_engine(db_url)
    yield EventStore(engine)
    engine.dispose()


def answers(reads: ReadModels) -> tuple[object, ...]:
    stats = reads.stats(NOW)
    return (
        stats.position,
        stats.by_currency,
        reads.dlq_page(0, -1),
        reads.dlq_page(1, 3),
        *((found.rows, found.position) for found in map(reads.totals, ASKED)),
    )


def truth(store: EventStore) -> tuple[object, ...]:
    """The same questions asked of a full replay (the scratch tables)."""
    position = replay(store)
    engine = store.engine
    stats = queries.stats(engine, NOW, SCRATCH)
    every = queries.dlq_page(engine, 0, -1, SCRATCH)
    some = queries.dlq_page(engine, 1, 3, SCRATCH)
    return (
        position,
        stats.by_currency,
        queries.DlqPage(every.jobs, every.count, 0, -1, position),
        queries.DlqPage(some.jobs, some.count, 1, 3, position),
        *((queries.totals(engine, **_kwargs(asked), tables=SCRATCH), position) for asked in ASKED),
    )


def _kwargs(asked: TotalsAsked) -> dict[str, object]:
    return {
        "start": asked.start,
        "end": asked.end,
        "group_by": asked.group_by,
        "currency": asked.currency,
        "zone": asked.zone,
    }


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("cut", [0.0, 0.5, 1.0])
def test_a_read_is_the_full_fold_wherever_the_checkpoint_stands_and_writes_nothing(
    store: EventStore, readonly: EventStore, seed: int, cut: float
) -> None:
    append_plan(store, seeded_plan(seed, transactions=40))
    head = store.head().position
    Projector(store).catch_up(until_position=int(head * cut))
    live_before = read_snapshot(store.engine, LIVE)

    found = answers(ReadModels(readonly))

    assert read_snapshot(store.engine, LIVE) == live_before  # no row, no checkpoint moved
    assert found[0] == head
    assert found == truth(store)


def test_get_requests_write_nothing_and_see_the_write_before_them(db_url: str) -> None:
    ledger = build_ledger(Settings(database_url=db_url))
    try:
        client = TestClient(create_app(ledger))
        body = {
            "userId": "u",
            "placeId": "p",
            "missionId": "m",
            "amount": 500,
            "currency": "KRW",
            "idempotencyKey": "k-1",
        }
        assert client.post("/api/settlements", json=body).status_code == 201
        head = ledger.store.head().position
        before = read_snapshot(ledger.engine, LIVE)
        stats = client.get("/api/queue/stats").json()
        failed = client.get("/api/queue/failed").json()
        totals = client.get("/api/totals").json()
        assert read_snapshot(ledger.engine, LIVE) == before
        assert before.position == 0  # nobody folded: the answers come from the tail
        assert stats["stats"]["total"] == 1 and stats["stats"]["waiting"] == 1
        assert stats["asOfPosition"] == failed["asOfPosition"] == totals["asOfPosition"] == head
        assert failed["count"] == 0 and totals["totals"] == []
    finally:
        ledger.close()


def test_one_follower_leads(engine: Engine) -> None:
    # PostgreSQL: a session advisory lock; SQLite: a flock on a file beside the database
    first, second = Leadership(engine), Leadership(engine)
    try:
        assert first.hold()
        assert not second.hold()
        assert first.hold()  # keeps it
        first.release()
        assert second.hold()
        assert not first.hold()
    finally:
        first.release()
        second.release()


def test_a_follower_that_does_not_lead_folds_nothing(store: EventStore) -> None:
    append_plan(store, seeded_plan(3, transactions=5))
    leader = Leadership(store.engine)
    try:
        assert leader.hold()
        stop = threading.Event()
        stop.set()  # one poll
        position = Projector(store).follow(stop, poll_seconds=0)
        assert position == 0 == Projector(store).checkpoint()
    finally:
        leader.release()


@pytest.mark.parametrize("seed", range(6))
def test_the_dead_letter_queue_with_a_tail_that_requeues_and_dead_letters(
    store: EventStore, seed: int
) -> None:
    append_plan(store, seeded_plan(seed, transactions=80))
    Projector(store).catch_up(until_position=store.head().position // 3)
    found = ReadModels(store).dlq_page(0, -1)
    position = replay(store)
    expected = queries.dlq_page(store.engine, 0, -1, SCRATCH)
    assert found == queries.DlqPage(expected.jobs, expected.count, 0, -1, position)
    times = [entry.dead_lettered_at for entry in found.jobs]
    assert times == sorted(times, reverse=True)
