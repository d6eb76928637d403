"""Auditors read from a streaming replica (``LEDGER_AUDIT_DATABASE_URL``) and see its lag.

A real hot standby of the test PostgreSQL (``tests/pg_replica.py``). Replay on the
replica is paused while the primary takes more events: what the auditor's commands
and endpoints answer is then the replica's older log (so they did read there), and
the lag they report is the WAL the replica has not replayed. After replay resumes,
the same reads see every event and report zero bytes behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ledger.db import create_engine
from ledger.http import create_app
from ledger.http.deps import LAG_HEADER
from ledger.replica import ReplicaLag, replica_lag
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.factories import request
from tests.pg_replica import Replica
from tests.queue_fixtures import wait_until

pytestmark = pytest.mark.parametrize("db_backend", ["postgres"])  # a standby is PostgreSQL's

ROOT = Path(__file__).resolve().parents[2]
LEASE = timedelta(seconds=30)


@pytest.fixture
def primary(db_url: str) -> Iterator[Ledger]:
    ledger = build_ledger(Settings(database_url=db_url))
    yield ledger
    ledger.close()


@pytest.fixture
def replica_url(db_url: str, pg_replica: Replica) -> str:
    return pg_replica.url_for(db_url)


def lag(replica_url: str, primary: Ledger) -> ReplicaLag:
    engine = create_engine(replica_url)
    try:
        found = replica_lag(engine, primary.engine)
    finally:
        engine.dispose()
    assert found is not None  # a standby reports a lag; the primary would not
    return found


def seed(ledger: Ledger, start: int, n: int) -> list[str]:
    """``n`` jobs; the first half claimed and completed."""
    ids = [ledger.enqueue(request(idempotency_key=f"k{start + i}")).job_id for i in range(n)]
    for job in ledger.claim("auditor-test:1", n // 2, LEASE):
        ledger.complete(job, job.attempt)
    return ids


def caught_up(replica_url: str, primary: Ledger) -> None:
    """Until the replica has replayed the primary's WAL up to now (others keep writing)."""
    with primary.engine.connect() as conn:
        target = conn.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar_one()
    engine = create_engine(replica_url)
    query = sa.text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:lsn AS pg_lsn)) >= 0")

    def replayed() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(query, {"lsn": target}).scalar_one())

    try:
        wait_until(replayed, 60, "the replica to catch up")
    finally:
        engine.dispose()


def ledger_cli(db_url: str, replica: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({"PYTHONPATH": str(ROOT), "LEDGER_DATABASE_URL": db_url})
    if replica is not None:
        env["LEDGER_AUDIT_DATABASE_URL"] = replica
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_primary_reports_no_lag(primary: Ledger) -> None:
    assert replica_lag(primary.engine, primary.engine) is None


def test_auditor_commands_read_the_replica_and_report_its_lag(
    primary: Ledger, db_url: str, replica_url: str, pg_replica: Replica
) -> None:
    seed(primary, 0, 10)
    caught_up(replica_url, primary)
    pg_replica.pause_replay()
    try:
        late = seed(primary, 10, 4)[0]
        assert lag(replica_url, primary).bytes_behind > 0
        verified = ledger_cli(db_url, replica_url, "verify", "--json", "--workers", "1")
        assert verified.returncode == 0, verified.stderr
        assert orjson.loads(verified.stdout)["checked"] == 10 + 5 + 5  # enqueued, attempted, done
        assert "bytes of WAL behind the primary" in verified.stderr
        assert "replica: 0 bytes of WAL behind" not in verified.stderr
        # the late job is on the primary, not yet on the replica the auditor reads
        assert ledger_cli(db_url, replica_url, "history", late).returncode != 0
        assert ledger_cli(db_url, None, "history", late, "--json").returncode == 0
        moment = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        stats = ledger_cli(db_url, replica_url, "stats", "--as-of", moment, "--json")
        assert stats.returncode == 0, stats.stderr
        assert orjson.loads(stats.stdout)["position"] == 20
        exported = ledger_cli(db_url, replica_url, "events", "--format", "jsonl")
        assert exported.returncode == 0, exported.stderr
        assert len(exported.stdout.splitlines()) == 20
    finally:
        pg_replica.resume_replay()
    caught_up(replica_url, primary)
    verified = ledger_cli(db_url, replica_url, "verify", "--json", "--workers", "1")
    assert orjson.loads(verified.stdout)["checked"] == 20 + 4 + 2 + 2
    assert "bytes of WAL behind the primary" in verified.stderr  # others write too: not 0
    reconciled = ledger_cli(db_url, replica_url, "reconcile", "--json")
    assert "bytes of WAL behind the primary" in reconciled.stderr


def test_auditor_endpoints_read_the_replica_and_report_its_lag(
    primary: Ledger, db_url: str, replica_url: str, pg_replica: Replica
) -> None:
    ids = seed(primary, 0, 6)
    caught_up(replica_url, primary)
    settings = primary.settings.model_copy(update={"audit_database_url": replica_url})
    audited = build_ledger(settings)
    pg_replica.pause_replay()
    try:
        late = seed(primary, 6, 2)[0]
        with TestClient(create_app(audited)) as client:
            page = client.get("/api/events", params={"limit": 1000})
            assert page.status_code == 200
            assert len(page.json()["events"]) == 6 + 3 + 3
            assert "bytesBehind=" in page.headers[LAG_HEADER]
            assert not page.headers[LAG_HEADER].startswith("bytesBehind=0;")
            assert client.get(f"/api/jobs/{ids[0]}/history").status_code == 200
            assert client.get(f"/api/jobs/{late}/history").status_code == 404
    finally:
        pg_replica.resume_replay()
        audited.close()
