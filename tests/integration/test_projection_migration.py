"""Revision 0002_projections: the read-model tables, seeded checkpoints, a clean round trip."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.store import EventStore
from projections.runner import Projector
from projections.schema import LIVE, SCRATCH, checkpoints
from tests.factories import request


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
