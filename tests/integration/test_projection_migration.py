"""Revision 0002_projections: the read-model tables, seeded checkpoints, a clean round trip."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.request import canonical_json
from ledger.store import EventStore
from projections.memory import MemoryProjection
from projections.runner import Projector
from projections.schema import LIVE, SCRATCH, checkpoints
from projections.snapshot import read_snapshot
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
