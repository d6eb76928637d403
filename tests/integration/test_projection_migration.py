"""The projection revisions (0002 on): tables, checkpoints, what each changes, round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.events import as_time, to_utc
from ledger.request import canonical_json
from ledger.store import EventStore
from projections import queries
from projections.memory import MemoryProjection
from projections.queries import GROUPS, completed_totals_query, delayed_query
from projections.rows import JOB_COLUMNS
from projections.runner import Projector, replay
from projections.schema import LIVE, SCRATCH, checkpoints
from projections.snapshot import Snapshot, read_snapshot
from tests.factories import request
from tests.projection_logs import append_plan, seeded_plan


def tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_both_table_sets_exist_with_their_checkpoints(engine: Engine) -> None:
    expected = {table.name for table in (*LIVE.all, *SCRATCH.all)} | {"projection_checkpoints"}
    assert expected <= tables(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(checkpoints.c.name, checkpoints.c.position)).all()
    assert sorted(tuple(row) for row in rows) == [("live", 0), ("scratch", 0)]


def test_downgrade_to_the_log_keeps_events_and_upgrade_re_projects(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    store.enqueue(request(), max_attempts=1)
    Projector(store).catch_up()
    migrate.downgrade(db_url, "0001_events")
    engine.dispose()
    assert tables(engine) & {"job_state", "projection_checkpoints", "scratch_dlq"} == set()
    assert store.head().position == 1
    migrate.upgrade(db_url)
    engine.dispose()
    migrate.check(db_url)
    assert Projector(store).catch_up() == 1


def test_daily_totals_revision_fills_them_from_settled_totals(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    append_plan(store, seeded_plan(3, 40))
    Projector(store).catch_up()
    expected = MemoryProjection().replay(store.read_all()).snapshot()
    assert expected.tables["daily_totals"]  # the plan completes some jobs
    migrate.downgrade(db_url, "0002_projections")
    engine.dispose()
    assert "daily_totals" not in tables(engine)
    migrate.upgrade(db_url)
    engine.dispose()
    # refilled from settled_totals, so the set stands at its checkpoint: no rebuild needed
    assert read_snapshot(engine) == expected
    migrate.check(db_url)


def test_job_state_revision_drops_the_request_and_downgrade_restores_it(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    append_plan(store, seeded_plan(3, 40))
    Projector(store).catch_up()
    expected = read_snapshot(engine)
    migrate.downgrade(db_url, "0003_daily_totals")
    engine.dispose()
    # the column holds each job's request exactly as the old runner wrote it
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT job_id, request FROM job_state")).all())
    requests = {
        event.job_id: canonical_json(event.data["request"]).decode()
        for event in store.read_all()
        if event.version == 1
    }
    assert stored == requests
    migrate.upgrade(db_url)
    engine.dispose()
    assert "request" not in {
        column["name"] for column in sa.inspect(engine).get_columns("job_state")
    }
    assert read_snapshot(engine) == expected
    migrate.check(db_url)


def waiting_index(engine: Engine) -> tuple[str, int]:
    """The live ``job_state``'s waiting index: its definition, and the rows it holds."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            definition = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_job_state_waiting_due_at'"
            ).scalar_one()
            rows = conn.exec_driver_sql(
                "SELECT count(*) FROM job_state INDEXED BY ix_job_state_waiting_due_at "
                "WHERE status = 'waiting'"
            ).scalar_one()
            return str(definition), int(rows)
        conn.exec_driver_sql("ANALYZE job_state")
        # resolved through the search path: the test's own schema, whatever other
        # schemas of the database hold
        definition, rows = conn.exec_driver_sql(
            "SELECT pg_get_indexdef(oid), reltuples FROM pg_class "
            "WHERE oid = to_regclass('ix_job_state_waiting_due_at')"
        ).one()
        return str(definition), int(rows)


def test_waiting_index_revision_indexes_only_waiting_jobs_and_round_trips(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    append_plan(store, seeded_plan(5, 40))
    for key in ("waiting-now", "waiting-later"):
        delay = timedelta(hours=1) if key.endswith("later") else None
        store.enqueue(request(idempotency_key=key), max_attempts=3, delay=delay)
    Projector(store).catch_up()
    expected = read_snapshot(engine)
    status = JOB_COLUMNS.index("status")
    waiting = sum(1 for row in expected.tables["job_state"].values() if row[status] == "waiting")
    assert len(expected.tables["job_state"]) > waiting > 0
    definition, rows = waiting_index(engine)
    assert "WHERE" in definition and "'waiting'" in definition and rows == waiting
    migrate.downgrade(db_url, "0004_job_state_without_request")
    engine.dispose()
    indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("job_state")}
    assert "ix_job_state_status_due_at" in indexes
    assert "ix_job_state_waiting_due_at" not in indexes
    migrate.upgrade(db_url)
    engine.dispose()
    assert waiting_index(engine) == (definition, waiting)
    assert read_snapshot(engine) == expected
    migrate.check(db_url)


# SQLite's planner is the strict one; PostgreSQL plans by table statistics
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_delayed_count_reads_the_waiting_index(engine: Engine) -> None:
    """The query must state the index's condition as it is written, or SQLite will not use it."""
    compiled = delayed_query(LIVE, datetime(2026, 1, 1, tzinfo=UTC)).compile(engine)
    with engine.connect() as conn:
        # the plan does not depend on the value: bind none
        unbound = (None,) * len(compiled.params)
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound).all()
    assert any("USING INDEX ix_job_state_waiting_due_at" in row[-1] for row in plan)


def settled_groups(snapshot: Snapshot) -> dict[tuple[object, ...], tuple[int, int]]:
    """What ``settled_totals`` held: the completed jobs summed per UTC day, currency, user,
    place and mission (computed here from the job rows)."""
    column = {name: JOB_COLUMNS.index(name) for name in JOB_COLUMNS}
    groups: dict[tuple[object, ...], tuple[int, int]] = {}
    for row in snapshot.tables["job_state"].values():
        if row[column["status"]] != "completed":
            continue
        settled = row[column["completed_at"]]
        assert isinstance(settled, datetime)
        key = (
            to_utc(settled).date(),
            *(row[column[name]] for name in ("currency", "user_id", "place_id", "mission_id")),
        )
        jobs, amount = groups.get(key, (0, 0))
        groups[key] = (jobs + 1, amount + row[column["amount"]])
    return groups


def as_day(value: object) -> object:
    """A day as the driver returns it (SQLite: text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def test_totals_revision_drops_settled_totals_and_downgrade_refills_them(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    append_plan(store, seeded_plan(5, 60))
    Projector(store).catch_up()
    replay(store, until_position=store.head().position // 2)  # scratch: an as-of set
    expected = read_snapshot(engine)
    groups = settled_groups(expected)
    assert groups  # the plan completes jobs
    scratch_groups = settled_groups(read_snapshot(engine, SCRATCH))
    assert scratch_groups and scratch_groups != groups
    assert {"settled_totals", "scratch_settled_totals"} & tables(engine) == set()
    migrate.downgrade(db_url, "0006_identifiers_compare_bytes")
    engine.dispose()
    for name in ("settled_totals", "scratch_settled_totals"):
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT * FROM {name}")).all()
        refilled = {
            (as_day(day), currency, user, place, mission): (jobs, amount)
            for day, currency, user, place, mission, jobs, amount in rows
        }
        assert refilled == (groups if name == "settled_totals" else scratch_groups)
    migrate.upgrade(db_url)
    engine.dispose()
    assert {"settled_totals", "scratch_settled_totals"} & tables(engine) == set()
    assert read_snapshot(engine) == expected
    migrate.check(db_url)
    # and the finest totals the query sums from the jobs are the table's rows
    fine = queries.totals(engine, group_by=("day", "user_id", "place_id", "mission_id"))
    assert {
        (r.group["day"], r.currency, *(r.group[n] for n in GROUPS[1:])): (r.jobs, r.amount)
        for r in fine
    } == groups


# SQLite's planner is the strict one; PostgreSQL plans by table statistics
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_totals_by_user_over_days_read_the_completed_index(engine: Engine) -> None:
    day = date(2026, 1, 1)
    query = completed_totals_query(LIVE, "sqlite", day, day, ("user_id",), None)
    compiled = query.compile(engine)
    with engine.connect() as conn:
        unbound = (None,) * len(compiled.params)
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound).all()
    assert any("USING INDEX ix_job_state_completed_at" in row[-1] for row in plan)


def test_idempotency_revision_drops_the_table_and_downgrade_refills_it(
    db_url: str, engine: Engine, store: EventStore
) -> None:
    append_plan(store, seeded_plan(5, 60))
    Projector(store).catch_up()
    half = store.head().position // 2
    replay(store, until_position=half)  # scratch: an as-of set, which knows fewer keys
    expected = read_snapshot(engine)
    enqueued = {e.idempotency_key: e for e in store.read_all() if e.version == 1}
    known_then = {key for key, event in enqueued.items() if event.position <= half}
    assert 0 < len(known_then) < len(enqueued)
    assert {"idempotency", "scratch_idempotency"} & tables(engine) == set()
    migrate.downgrade(db_url, "0007_totals_from_job_state")
    engine.dispose()
    with engine.connect() as conn:
        live = conn.exec_driver_sql(
            "SELECT idempotency_key, job_id, fingerprint, first_seen_at FROM idempotency"
        ).all()
        scratch = {
            key
            for (key,) in conn.exec_driver_sql("SELECT idempotency_key FROM scratch_idempotency")
        }
    # what the fold wrote there: every key with its job, fingerprint and first time
    assert {row[0]: (row[1], row[2]) for row in live} == {
        key: (event.job_id, event.data["fingerprint"]) for key, event in enqueued.items()
    }
    first_seen = {row[0]: row[3] for row in live}
    key, event = next(iter(enqueued.items()))
    assert as_time(first_seen[key]) == event.occurred_at
    assert scratch == known_then
    migrate.upgrade(db_url)
    engine.dispose()
    assert {"idempotency", "scratch_idempotency"} & tables(engine) == set()
    assert read_snapshot(engine) == expected
    migrate.check(db_url)
    entry = queries.idempotency(engine, key)
    assert entry is not None
    assert (entry.job_id, entry.fingerprint, entry.first_seen_at) == (
        event.job_id,
        event.data["fingerprint"],
        event.occurred_at,
    )
