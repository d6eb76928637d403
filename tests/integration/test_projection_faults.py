"""Faults around the runner: a crash mid-batch, a late commit, appends during a rebuild."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.db import create_engine
from ledger.events import EventType, NewEvent
from ledger.store import EventStore
from projections import queries, sql
from projections.memory import MemoryProjection
from projections.runner import Projector, rebuild
from projections.schema import LIVE, SCRATCH, ProjectionTables
from projections.snapshot import read_snapshot
from projections.writers import writer
from tests.factories import request
from tests.projection_logs import append_plan, seeded_plan


class Crash(Exception):
    """The injected failure."""


def fold_of(store: EventStore, until: int | None = None) -> MemoryProjection:
    return MemoryProjection().replay(store.read_all(until_position=until))


def test_a_crash_mid_batch_leaves_rows_and_checkpoint_consistent(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_plan(store, seeded_plan(1, 25))
    head = store.head().position
    batch = 7
    real = sql.set_checkpoint

    def crash_on_second_batch(conn: Connection, tables: ProjectionTables, position: int) -> None:
        # every table of the batch has been written in this transaction by now
        if position > batch:
            raise Crash
        real(conn, tables, position)

    monkeypatch.setattr(sql, "set_checkpoint", crash_on_second_batch)
    with pytest.raises(Crash):
        Projector(store, batch_size=batch).catch_up()
    assert queries.checkpoint(engine) == batch
    assert read_snapshot(engine) == fold_of(store, until=batch).snapshot()

    monkeypatch.setattr(sql, "set_checkpoint", real)
    assert Projector(store, batch_size=batch).catch_up() == head
    assert read_snapshot(engine) == fold_of(store).snapshot()


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_a_late_commit_is_not_skipped(db_url: str, store: EventStore, engine: Engine) -> None:
    """An earlier append still open while a later one tries to commit: nothing is skipped."""
    early_job = store.enqueue(request(idempotency_key="early"), max_attempts=3).job_id
    Projector(store).catch_up()
    before = store.head().position

    slow_engine = create_engine(db_url)
    inserted, release = threading.Event(), threading.Event()

    @sa.event.listens_for(slow_engine, "commit")
    def hold_the_commit(_conn: Any) -> None:
        inserted.set()  # the row is written, the transaction not yet committed
        release.wait(30)

    slow = threading.Thread(
        target=EventStore(slow_engine).append,
        args=(early_job, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "slow-worker")]),
    )
    later_done = threading.Event()

    def later_append() -> None:
        store.enqueue(request(idempotency_key="later"), max_attempts=3)
        later_done.set()

    later = threading.Thread(target=later_append)
    slow.start()
    try:
        assert inserted.wait(30)
        later.start()
        # the runner sees neither: the early one is uncommitted, the later one waits behind it
        assert Projector(store).catch_up() == before
        assert not later_done.is_set()
    finally:
        release.set()
        slow.join()
        later.join()
        slow_engine.dispose()
    events = list(store.read_all(after=before))
    assert [(e.position, e.actor) for e in events] == [
        (before + 1, "slow-worker"),
        (before + 2, "service"),
    ]
    assert Projector(store).catch_up() == before + 2
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_rebuild_while_a_writer_appends(store: EventStore, engine: Engine) -> None:
    append_plan(store, seeded_plan(2, 40))
    Projector(store).catch_up()
    stop, appended = threading.Event(), threading.Semaphore(0)
    errors: list[BaseException] = []

    def writer() -> None:
        seed = 100
        try:
            while not stop.is_set():
                append_plan(store, seeded_plan(seed, 3))
                appended.release()
                seed += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
            appended.release()

    def during_rebuild(_events: int, _position: int) -> None:
        # each batch of the rebuild waits for the writer to land another append
        assert appended.acquire(timeout=30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rebuild(store, batch_size=8, on_batch=during_rebuild)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    position = Projector(store).catch_up()
    assert position == store.head().position
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_readers_see_the_old_rows_until_the_swap(store: EventStore, engine: Engine) -> None:
    append_plan(store, seeded_plan(3, 20))
    Projector(store).catch_up()
    live_before = read_snapshot(engine)
    seen: list[bool] = []

    def peek(_events: int, _position: int) -> None:
        seen.append(read_snapshot(engine, LIVE) == live_before)

    rebuild(store, batch_size=5, on_batch=peek)
    # no appends: every batch ran before the swap, and left the live tables as they were
    assert seen and all(seen)
    assert read_snapshot(engine) == fold_of(store).snapshot()


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_emptying_a_set_waits_for_a_runners_batch_instead_of_deadlocking(
    store: EventStore, engine: Engine
) -> None:
    """A second replay empties scratch while the first is in a batch: no deadlock.

    The batch holds the checkpoint row and then writes the tables; emptying takes
    the row first too, so it waits for the batch and never holds a table the
    batch needs (the other order deadlocked: PostgreSQL killed one of the two).
    """
    append_plan(store, seeded_plan(2, 10))
    scratch = Projector(store, SCRATCH)
    scratch.catch_up()
    with engine.begin() as batch:
        sql.lock_checkpoint(batch, SCRATCH)
        emptied: list[BaseException | None] = []

        def empty() -> None:
            try:
                scratch.reset()
                emptied.append(None)
            except BaseException as error:  # reported below
                emptied.append(error)

        other = threading.Thread(target=empty)
        other.start()
        other.join(1.0)  # long enough to reach its first lock, and to wait there
        assert other.is_alive()
        batch.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        batch.execute(sa.delete(SCRATCH.daily_totals))  # a table the batch had not touched yet
        batch.execute(sa.delete(SCRATCH.job_state))
    other.join(30)
    assert emptied == [None]
    assert scratch.checkpoint() == 0
    assert not read_snapshot(engine, SCRATCH).tables["job_state"]


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_an_error_inside_copy_reaches_the_store_edge_as_sqlalchemys(engine: Engine) -> None:
    """COPY runs on the driver's own cursor; its errors are wrapped as SQLAlchemy's.

    ``translate_errors`` knows SQLAlchemy's errors only: a driver error escaping
    raw (a connection lost mid-COPY, say) would not become ``DatabaseUnavailable``
    and would end ``ledger project --follow``.
    """
    row = ("job-1", "waiting", 1, 1, 0, 0, 3, None, None, None, None)
    row += ("2026-01-01 00:00:00.000000",) * 2 + (None, None)
    row += ("user-1", "place-1", "mission-1", 100, "KRW", "key-1")
    row += (1, None, 0, 0, 0, None, None, None)  # round, its amount, money, provider
    with pytest.raises(sa.exc.IntegrityError, match="pk_job_state"), engine.begin() as conn:
        writer(conn.dialect).insert(conn, LIVE.job_state, [row, row])  # the same key twice
