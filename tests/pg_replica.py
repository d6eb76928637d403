"""A real streaming replica of the test PostgreSQL, for the auditors' reads (issue 27).

Started once per session on a private loopback port: ``pg_basebackup -R`` of the
primary (as the postgres user: the server refuses to run as root) into a temporary
folder, ``hot_standby_feedback=on`` (a long verify is not cancelled by vacuum on the
primary), ``pg_ctl start``; stopped and removed at the end.

The primary must accept replication connections from 127.0.0.1. When its
``pg_hba.conf`` has no such line, the fixture appends
``host replication all 127.0.0.1/32 trust`` (the test server trusts loopback for
every database already) and reloads the configuration; ``.ci/run`` does the same.
Locally a replica that cannot start skips the tests that need it; in CI it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ledger.db import create_engine
from tests.backends import postgres_admin_url, unavailable
from tests.queue_fixtures import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HBA_LINE = "host replication all 127.0.0.1/32 trust"


@dataclass
class Replica:
    """A hot standby of the test server on ``port``, data in ``folder``."""

    folder: Path
    port: int

    def url_for(self, primary_url: str) -> str:
        """``primary_url`` (its database, user, search path) pointed at the replica."""
        return make_url(primary_url).set(port=self.port).render_as_string(hide_password=False)

    def pause_replay(self) -> None:
        self._call("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._call("SELECT pg_wal_replay_resume()")

    def _call(self, sql: str) -> None:
        engine = create_engine(self.url_for(postgres_admin_url()), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Stop the server and remove its folder (data, sockets, log)."""
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.folder), "-m", "immediate", "stop"])
        shutil.rmtree(self.folder.parent, ignore_errors=True)


def _as_postgres(command: list[str]) -> subprocess.CompletedProcess[str]:
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*runner, *command], capture_output=True, text=True, timeout=300, check=False
    )


def allow_replication() -> Path:
    """Make sure the primary lets 127.0.0.1 connect for replication (append + reload).

    Returns its ``pg_hba.conf`` (Debian keeps it outside the data folder: the replica
    gets a copy).
    """
    admin = create_engine(postgres_admin_url(), poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            hba = Path(str(conn.exec_driver_sql("SHOW hba_file").scalar_one()))
            rules = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database)"
                " AND (address IS NULL OR address = '127.0.0.1')"
            ).scalar_one()
            if rules:
                return hba
            with hba.open("a", encoding="utf-8") as file:
                file.write(
                    f"\n# the ledger's tests: a streaming replica for auditors\n{HBA_LINE}\n"
                )
            conn.exec_driver_sql("SELECT pg_reload_conf()")
            return hba
    finally:
        admin.dispose()


def start_replica(port: int) -> Replica:
    if not (PG_BIN / "pg_basebackup").exists():
        unavailable("a PostgreSQL replica", f"{PG_BIN} has no pg_basebackup")
    primary = make_url(postgres_admin_url())
    folder = Path(tempfile.mkdtemp(prefix="ledger-replica-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:  # the server runs as postgres and writes here
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    replica = Replica(data, port)
    try:
        hba = allow_replication()
        steps = [
            [
                str(PG_BIN / "pg_basebackup"),
                *("-h", primary.host or "127.0.0.1", "-p", str(primary.port or 5432)),
                *("-U", primary.username or "postgres", "-D", str(data), "-R", "-X", "stream"),
                *("-c", "fast"),  # checkpoint now, not spread over minutes
            ],
            ["cp", str(hba), str(data / "pg_hba.conf")],
            ["touch", str(data / "pg_ident.conf")],
            ["sh", "-c", f"echo \"listen_addresses = '127.0.0.1'\" > {data / 'postgresql.conf'}"],
            [
                str(PG_BIN / "pg_ctl"),
                *("-D", str(data), "-l", str(folder / "replica.log"), "-w", "-t", "60"),
                *("-o", f"-p {port} -k {sockets} -c hot_standby_feedback=on", "start"),
            ],
        ]
        for step in steps:
            done = _as_postgres(step)
            if done.returncode != 0:
                raise RuntimeError(f"{Path(step[0]).name}: {done.stdout}{done.stderr}")
        wait_for_standby(replica)
    except (OSError, RuntimeError, sa.exc.OperationalError, subprocess.SubprocessError) as exc:
        replica.stop()
        shutil.rmtree(folder, ignore_errors=True)
        unavailable("a PostgreSQL replica", exc)
    return replica


def wait_for_standby(replica: Replica, timeout: float = 60) -> None:
    engine = create_engine(replica.url_for(postgres_admin_url()), poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    if conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one():
                        return
            except sa.exc.OperationalError:
                pass
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise RuntimeError(f"the replica on port {replica.port} did not start as a standby")


@pytest.fixture(scope="session")
def pg_replica() -> Iterator[Replica]:
    replica = start_replica(free_port())
    yield replica
    replica.stop()
