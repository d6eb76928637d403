"""The shipped PostgreSQL role script: the app role can append and read, never rewrite.

Runs the real script (``ledger roles``) in a fresh schema with role names unique to
this test run, connects as the app role, and tries what an attacker would.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger import migrate
from ledger.audit.roles import roles_sql
from ledger.audit.settled import completed_settlements
from ledger.audit.verify import verify_log
from ledger.db import create_engine
from ledger.errors import InvalidRequest
from ledger.events import EventType, NewEvent, format_time, to_utc
from ledger.store import EventStore
from projections import queries
from projections.memory import MemoryProjection
from projections.runner import Projector, rebuild, replay
from projections.schema import SCRATCH
from projections.snapshot import read_snapshot
from tests.audit_support import Attacker, build_log, forged_payout
from tests.backends import postgres_schema
from tests.e2e.conftest import LEDGER
from tests.factories import request
from tests.projection_logs import append_plan, seeded_plan


@dataclass
class Roles:
    admin: Engine
    app: Engine
    owner_name: str
    app_name: str
    schema: str
    auditor_name: str
    url: str

    def apply(self) -> None:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(
                roles_sql(
                    owner=self.owner_name,
                    app=self.app_name,
                    auditor=self.auditor_name,
                    schema=self.schema,
                )
            )

    def url_of(self, role: str) -> str:
        return make_url(self.url).set(username=role).render_as_string(hide_password=False)


@pytest.fixture
def roles() -> Iterator[Roles]:
    with postgres_schema() as url:
        schema = str(make_url(url).query["options"]).removeprefix("-csearch_path=")
        migrate.upgrade(url)
        suffix = uuid.uuid4().hex[:10]
        owner, app = f"ledger_owner_{suffix}", f"ledger_app_{suffix}"
        auditor = f"ledger_auditor_{suffix}"
        admin = create_engine(url, poolclass=sa.pool.NullPool)
        with admin.begin() as conn:  # a projection table that exists when the script runs
            conn.exec_driver_sql("CREATE TABLE projection_demo (id int PRIMARY KEY, n int)")
        app_url = make_url(url).set(username=app).render_as_string(hide_password=False)
        app_engine = create_engine(app_url, poolclass=sa.pool.NullPool)
        setup = Roles(admin, app_engine, owner, app, schema, auditor, url)
        try:
            setup.apply()
            yield setup
        finally:
            app_engine.dispose()
            with admin.begin() as conn:
                for role in (owner, app, auditor):
                    exists = conn.execute(
                        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
                    ).first()
                    if exists is None:
                        continue
                    conn.exec_driver_sql(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
                    conn.exec_driver_sql(f"DROP OWNED BY {role}")
                    conn.exec_driver_sql(f"DROP ROLE {role}")
            admin.dispose()


def refused(engine: Engine, statement: str) -> str:
    """Run ``statement`` as the app; it must fail. Returns the database's message."""
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        conn.exec_driver_sql(statement)
    return str(caught.value.orig).lower()


def test_the_app_role_appends_and_reads(roles: Roles) -> None:
    store = EventStore(roles.app)
    job = store.enqueue(request(), max_attempts=3).job_id
    store.append(job, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "w")])
    assert [e.version for e in store.read_stream(job)] == [1, 2]
    assert verify_log(roles.app).ok
    with roles.app.begin() as conn:  # projections: full read/write
        conn.exec_driver_sql("INSERT INTO projection_demo VALUES (1, 1)")
        conn.exec_driver_sql("UPDATE projection_demo SET n = 2")
        conn.exec_driver_sql("DELETE FROM projection_demo")


def test_the_app_role_keeps_its_projections_rebuilt_and_replayed(roles: Roles) -> None:
    """No ownership (no renames, no TRUNCATE): rebuild in place, replay with DELETE."""
    store = EventStore(roles.app)
    append_plan(store, seeded_plan(8))
    expected = MemoryProjection().replay(store.read_all()).snapshot()
    assert Projector(store).catch_up() == store.head().position
    assert rebuild(store) == store.head().position
    assert read_snapshot(roles.app) == expected
    middle = store.head().position // 2
    assert replay(store, until_position=middle) == middle
    assert replay(store) == store.head().position
    assert read_snapshot(roles.app, SCRATCH) == expected


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET actor = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE alembic_version SET version_num = 'x'",
    ],
)
def test_the_app_role_cannot_rewrite_the_log(roles: Roles, statement: str) -> None:
    EventStore(roles.app).enqueue(request(), max_attempts=3)
    assert "permission denied" in refused(roles.app, statement)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE events DISABLE TRIGGER USER",
        "ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
        "DROP TRIGGER events_no_update_delete ON events",
        "DROP TABLE events",
        "ALTER TABLE events OWNER TO CURRENT_USER",
        "CREATE OR REPLACE FUNCTION ledger_events_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
        "SET session_replication_role = replica",
        "CREATE TABLE shadow (id int)",
    ],
)
def test_the_app_role_cannot_switch_off_the_triggers(roles: Roles, statement: str) -> None:
    message = refused(roles.app, statement)
    assert "must be owner" in message or "permission denied" in message


def test_the_app_role_cannot_become_the_owner(roles: Roles) -> None:
    assert "permission denied" in refused(roles.app, f"SET ROLE {roles.owner_name}")


def test_the_owner_owns_the_log(roles: Roles) -> None:
    with roles.admin.connect() as conn:
        owner = conn.execute(
            sa.text(
                "SELECT tableowner FROM pg_tables WHERE schemaname = :s AND tablename = 'events'"
            ),
            {"s": roles.schema},
        ).scalar_one()
    assert owner == roles.owner_name


def test_the_script_is_idempotent(roles: Roles) -> None:
    roles.apply()
    EventStore(roles.app).enqueue(request(), max_attempts=3)
    assert "permission denied" in refused(roles.app, "DELETE FROM events")


@pytest.mark.parametrize(
    "names",
    [
        {"owner": "Robert'); DROP TABLE events;--"},
        {"app": "1app"},
        {"schema": "public; drop"},
        {"owner": "same", "app": "same"},
    ],
)
def test_role_names_are_plain_identifiers(names: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        roles_sql(**names)


def _log_until(roles: Roles, moment: datetime) -> list[dict[str, object]]:
    """A log written by the owner with its clock at ``moment`` (the owner may stamp any time)."""
    EventStore(roles.admin, clock=lambda: moment).enqueue(
        request(idempotency_key="history"), max_attempts=3
    )
    return Attacker(roles.admin).rows()


def _now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return to_utc(conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one())


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (timedelta(days=-13), "runs backwards"),  # before the log's last event
        (timedelta(days=-1), "far from the database clock"),  # after it, but long past
        (timedelta(hours=1), "far from the database clock"),  # ahead of the clock
    ],
)
def test_the_app_role_cannot_append_at_another_time(
    roles: Roles, offset: timedelta, message: str
) -> None:
    now = _now(roles.admin)
    rows = _log_until(roles, now - timedelta(days=7))
    forged = forged_payout(rows[-1], now + offset)
    with pytest.raises(sa.exc.IntegrityError, match=message):
        Attacker(roles.app).insert(forged[0])
    assert EventStore(roles.app).head().position == len(rows)


def test_the_app_role_appends_after_a_clock_stepped_back(roles: Roles) -> None:
    """The head is ahead of the database's clock: appends are held at its time, and pass."""
    ahead = _now(roles.admin) + timedelta(minutes=10)
    rows = _log_until(roles, ahead)
    store = EventStore(roles.app)
    job = store.enqueue(request(idempotency_key="after-step"), max_attempts=3)
    assert job.event is not None and job.event.occurred_at == rows[-1]["occurred_at"]
    assert verify_log(roles.app).ok


def _as_auditor(roles: Roles, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LEDGER_DATABASE_URL": roles.url_of(roles.auditor_name)}
    return subprocess.run(
        [*LEDGER, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def test_the_auditor_role_reads_and_cannot_write(roles: Roles) -> None:
    store = EventStore(roles.admin)
    build_log(store, 8)
    Projector(store).catch_up()
    auditor = create_engine(roles.url_of(roles.auditor_name), poolclass=sa.pool.NullPool)
    try:
        for statement in (
            "INSERT INTO projection_demo VALUES (1, 1)",
            "DELETE FROM events",
            "CREATE TEMPORARY TABLE scratch (id int)",
        ):
            message = refused(auditor, statement)
            assert "permission denied" in message or "read-only transaction" in message
    finally:
        auditor.dispose()


def test_every_auditor_command_runs_as_the_read_only_role(roles: Roles, tmp_path: Path) -> None:
    """verify, history, events, stats/dlq --as-of, replay --check, reconcile: SELECT is enough."""
    store = EventStore(roles.admin)
    job_ids = build_log(store, 8)
    Projector(store).catch_up()
    settled = list(completed_settlements(store.read_all()))
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "idempotency_key,amount,currency,settled_at\n"
        + "".join(
            f"{s.idempotency_key},{s.amount},{s.currency},{format_time(s.completed_at)}\n"
            for s in settled
        )
    )
    now = format_time(datetime.now(UTC))
    commands = [
        ["verify", "--json"],
        ["history", job_ids[0], "--json"],
        ["events", "--format", "jsonl"],
        ["stats", "--as-of", now, "--json"],
        ["dlq", "list", "--as-of", now, "--json"],
        ["replay", "--check", "--json"],
        ["reconcile", "--json", "--statement", str(statement)],
    ]
    for command in commands:
        result = _as_auditor(roles, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    stats = orjson.loads(_as_auditor(roles, "stats", "--as-of", now, "--json").stdout)
    assert stats["stats"]["total"] == 8
    dlq = orjson.loads(_as_auditor(roles, "dlq", "list", "--as-of", now, "--json").stdout)
    assert dlq["count"] == queries.dlq_page(roles.admin).count
    check = orjson.loads(_as_auditor(roles, "replay", "--check", "--json").stdout)
    assert check["ok"] is True and check["behind"] == 0
