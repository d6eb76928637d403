"""The runner on SQLite and PostgreSQL: catch-up == rebuild == as-of, checkpoints, swap, follow."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.errors import DatabaseUnavailable, ProjectionBusy
from ledger.store import EventStore
from projections import queries, reconcile, runner, sql
from projections.memory import MemoryProjection
from projections.runner import Projector, rebuild, replay, replay_in_memory
from projections.schema import LIVE, SCRATCH
from projections.snapshot import read_snapshot
from tests.projection_logs import Plan, append_plan, plans, seeded_plan

DB_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fold_of(store: EventStore, until: int | None = None) -> MemoryProjection:
    return MemoryProjection().replay(store.read_all(until_position=until))


@DB_SETTINGS
@given(plan=plans(max_transactions=20), data=st.data())
def test_catch_up_in_random_chunks_equals_rebuild_equals_as_of(
    store: EventStore, engine: Engine, plan: Plan, data: st.DataObject
) -> None:
    # the log grows across examples; each example projects it from scratch
    append_plan(store, plan)
    head = store.head().position
    expected = fold_of(store).snapshot()

    # draws must not depend on the database (hypothesis replays them): cuts are fractions
    fractions = data.draw(st.lists(st.integers(0, 1000), max_size=4), label="cuts")
    live = Projector(store, LIVE)
    live.reset()
    for cut in sorted(head * fraction // 1000 for fraction in fractions):
        live.batch_size = data.draw(st.integers(1, 40), label="batch")
        live.catch_up(until_position=cut)
    live.catch_up()
    caught_up = read_snapshot(engine)
    assert caught_up == expected, caught_up.differences(expected)
    last = fold_of(store)
    now = max(record.job.updated_at for record in last.jobs.values())
    assert queries.stats(engine, now) == last.queue_stats(now)
    assert all(balance.balanced for balance in reconcile.conservation(engine, now))

    rebuild(store, batch_size=data.draw(st.integers(1, 40), label="rebuild batch"))
    assert read_snapshot(engine) == expected

    assert replay(store, until_position=head, batch_size=7) == head
    assert read_snapshot(engine, SCRATCH) == expected

    cut = head * data.draw(st.integers(0, 1000), label="as-of position") // 1000
    replay(store, until_position=cut, batch_size=data.draw(st.integers(1, 40)))
    prefix = fold_of(store, until=cut).snapshot()
    assert read_snapshot(engine, SCRATCH) == prefix
    assert replay_in_memory(store, until_position=cut).snapshot() == prefix


def test_a_small_memory_cap_reloads_jobs_and_gives_the_same_rows(
    store: EventStore, engine: Engine
) -> None:
    for seed in range(3):
        append_plan(store, seeded_plan(seed, 25))
    expected = fold_of(store).snapshot()
    # one job held at a time: every later event of an older job reloads it from its row
    live = Projector(store, LIVE, batch_size=6, held_jobs=1)
    live.reset()
    live.catch_up()
    assert read_snapshot(engine) == expected
    scratch = Projector(store, SCRATCH, batch_size=5, held_jobs=0)
    scratch.reset()
    scratch.catch_up()
    assert read_snapshot(engine, SCRATCH) == expected


def test_rebuild_replaces_stale_live_rows_and_keeps_following(
    store: EventStore, engine: Engine
) -> None:
    append_plan(store, seeded_plan(7, 20))
    Projector(store).catch_up()
    with engine.begin() as conn:  # damage the live set: a rebuild must not keep any of it
        conn.execute(sa.update(LIVE.job_state).values(attempts=99))
        conn.execute(sa.delete(LIVE.daily_totals))
    assert read_snapshot(engine) != fold_of(store).snapshot()
    positions: list[int] = []
    assert rebuild(store, batch_size=9, on_batch=lambda _n, p: positions.append(p)) == (
        store.head().position
    )
    assert read_snapshot(engine) == fold_of(store).snapshot()
    assert positions and positions[-1] == store.head().position
    append_plan(store, seeded_plan(8, 10))
    Projector(store).catch_up()
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_as_of_a_time_is_the_prefix_up_to_it(store: EventStore, engine: Engine) -> None:
    plan = seeded_plan(10)
    for _ in range(3):
        append_plan(store, plan)
    events = list(store.read_all())
    middle = events[len(events) // 2].occurred_at
    replay(store, until_time=middle, batch_size=4)
    expected = MemoryProjection().replay(e for e in events if e.occurred_at <= middle)
    assert read_snapshot(engine, SCRATCH) == expected.snapshot()
    assert queries.stats(engine, middle, SCRATCH) == expected.stored_stats(middle)


def test_the_checkpoint_only_moves_forward_with_the_rows(store: EventStore, engine: Engine) -> None:
    append_plan(store, seeded_plan(15))
    projector = Projector(store, batch_size=5)
    seen: list[int] = []
    final = projector.catch_up(on_batch=lambda _n, position: seen.append(position))
    assert final == store.head().position == seen[-1]
    assert seen == sorted(seen)
    assert projector.catch_up() == final  # nothing left: a no-op
    assert queries.checkpoint(engine) == final
    assert projector.backlog() == 0


def test_two_runners_at_once_apply_every_event_once(store: EventStore, engine: Engine) -> None:
    for _ in range(4):
        append_plan(store, seeded_plan(15))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Projector(store, batch_size=3).catch_up()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_a_second_replay_into_scratch_is_refused(store: EventStore) -> None:
    append_plan(store, seeded_plan(15))

    def interfere(_events: int, _position: int) -> None:
        Projector(store, SCRATCH).reset()

    with pytest.raises(ProjectionBusy):
        replay(store, batch_size=2, on_batch=interfere)


def test_follow_keeps_up_until_stopped(store: EventStore, engine: Engine) -> None:
    stop = threading.Event()
    projector = Projector(store, batch_size=4)
    follower = threading.Thread(
        target=projector.follow, args=(stop,), kwargs={"poll_seconds": 0.05}
    )
    follower.start()
    try:
        for _ in range(3):
            append_plan(store, seeded_plan(8))
            head = store.head().position
            deadline = time.monotonic() + 30
            while queries.checkpoint(engine) < head and time.monotonic() < deadline:
                time.sleep(0.02)
            assert queries.checkpoint(engine) == head
    finally:
        stop.set()
        follower.join()
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_rebuild_swaps_in_a_fresh_fold(store: EventStore, engine: Engine) -> None:
    append_plan(store, seeded_plan(15))
    Projector(store).catch_up()
    # damage the live tables: a rebuild does not read them
    with engine.begin() as conn:
        conn.execute(LIVE.job_state.delete())
        conn.execute(LIVE.queue_stats.delete())
    assert read_snapshot(engine) != fold_of(store).snapshot()
    assert rebuild(store, batch_size=6) == store.head().position
    assert read_snapshot(engine) == fold_of(store).snapshot()


def test_follow_survives_the_database_going_away(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    projector = Projector(store, batch_size=4)
    real = Projector.catch_up
    outages: list[DatabaseUnavailable] = []
    started = threading.Event()
    calls = 0

    def flaky(self: Projector, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first poll after start-up finds the database gone
            raise DatabaseUnavailable("the database cannot be reached")
        position = real(self, **kwargs)  # type: ignore[arg-type]
        started.set()
        return position

    monkeypatch.setattr(Projector, "catch_up", flaky)
    follower = threading.Thread(
        target=projector.follow,
        args=(stop,),
        kwargs={"poll_seconds": 0.05, "on_unavailable": outages.append},
    )
    follower.start()
    try:
        assert started.wait(30)  # appended after the first catch-up: the second one must fail
        append_plan(store, seeded_plan(9, 10))
        head = store.head().position
        deadline = time.monotonic() + 30
        while queries.checkpoint(engine) < head and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        follower.join()
    assert len(outages) == 1
    assert read_snapshot(engine) == fold_of(store).snapshot()


@pytest.mark.parametrize("fork_from", [0, None], ids=["forked", "in-process"])
def test_a_failed_rebuild_keeps_the_old_rows_and_leaves_no_reader_thread(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch, fork_from: int | None
) -> None:
    if fork_from is not None:
        monkeypatch.setattr(runner, "FORK_MIN_EVENTS", fork_from)
    append_plan(store, seeded_plan(15))
    Projector(store).catch_up()
    before = read_snapshot(engine)
    real = sql.write_rows
    calls = 0

    def failing(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # mid-log, with the next page already being read
            raise RuntimeError("write failed")
        real(*args)

    monkeypatch.setattr(sql, "write_rows", failing)
    with pytest.raises(RuntimeError, match="write failed"):
        rebuild(store, batch_size=4)
    assert not [t for t in threading.enumerate() if t.name.startswith("scan-read")]
    assert multiprocessing.active_children() == []
    assert read_snapshot(engine) == before
    monkeypatch.setattr(sql, "write_rows", real)
    assert rebuild(store, batch_size=4) == store.head().position
    assert read_snapshot(engine) == fold_of(store).snapshot()


def oid(engine: Engine, table: str) -> int:
    """What identifies a table's storage whatever its name (SQLite: its B-tree's root page)."""
    if engine.dialect.name == "sqlite":
        query = "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        query = "SELECT %s::regclass::oid"
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(query, (table,)).scalar_one())


def test_a_rebuild_trades_names_and_leaves_the_schema_as_migrated(
    db_url: str, store: EventStore, engine: Engine
) -> None:
    append_plan(store, seeded_plan(12))
    Projector(store).catch_up()
    old_live = oid(engine, "job_state")
    assert rebuild(store, batch_size=5) == store.head().position
    # the rebuilt rows came in under the live names; the old ones were emptied as scratch
    assert oid(engine, "job_state") != old_live
    assert oid(engine, "scratch_job_state") == old_live
    assert read_snapshot(engine) == fold_of(store).snapshot()
    assert not read_snapshot(engine, SCRATCH).tables["job_state"]
    migrate.check(db_url)  # same tables, keys and indexes under the same names
    append_plan(store, seeded_plan(3, 7))
    assert Projector(store).catch_up() == store.head().position  # live goes on from there
    assert read_snapshot(engine) == fold_of(store).snapshot()


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_a_swapped_in_set_has_statistics_on_the_columns_queries_use(
    store: EventStore, engine: Engine
) -> None:
    append_plan(store, seeded_plan(10))
    rebuild(store)
    with engine.connect() as conn:
        stats = conn.exec_driver_sql(
            "SELECT tablename, attname FROM pg_stats WHERE schemaname = current_schema() "
            "AND tablename IN ('job_state', 'dlq')"
        ).all()
    columns = {(table, column) for table, column in stats}
    planned = ("status", "due_at", "completed_at", "currency", "user_id", "place_id", "mission_id")
    assert {("job_state", column) for column in planned} <= columns
    assert ("job_state", "last_error") not in columns  # no query filters on it
    assert ("dlq", "dead_lettered_at") in columns


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_a_role_that_cannot_rename_rebuilds_in_place_and_tidies_up(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "can_rename", lambda *_sets: False)
    with engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()

    def tidied() -> tuple[bool, bool]:
        with engine.connect() as conn:
            analyzed, vacuumed = conn.exec_driver_sql(
                "SELECT last_analyze IS NOT NULL, last_vacuum IS NOT NULL "
                "FROM pg_stat_user_tables WHERE relid = 'job_state'::regclass"
            ).one()
        return bool(analyzed), bool(vacuumed)

    append_plan(store, seeded_plan(10))
    live = oid(engine, "job_state")
    rebuild(store)  # over empty tables: nothing deleted, statistics only
    assert oid(engine, "job_state") == live
    assert read_snapshot(engine) == fold_of(store).snapshot()
    if autovacuum == "off":  # the rebuild does autovacuum's work itself
        assert tidied() == (True, False)
    rebuild(store)  # every old row deleted: vacuum them away too
    assert read_snapshot(engine) == fold_of(store).snapshot()
    if autovacuum == "off":
        assert tidied() == (True, True)


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_a_swap_by_a_role_that_cannot_rename_copies_scratch_over_live(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "can_rename", lambda *_sets: False)
    append_plan(store, seeded_plan(4, 12))
    Projector(store).catch_up()
    append_plan(store, seeded_plan(5, 6))
    live = oid(engine, "job_state")
    position = replay(store)
    assert runner.swap(engine) == position == store.head().position
    assert oid(engine, "job_state") == live  # the same tables, the rows copied in
    assert read_snapshot(engine) == fold_of(store).snapshot()
    # scratch keeps its copy: a swap by copying leaves it as it was
    assert read_snapshot(engine, SCRATCH).tables == read_snapshot(engine).tables
