"""A worker started while a backend is away waits for it, then works (issue 20, L3).

Redis not running, Redis out of memory, the database refusing connections: the
worker stays up, says so once, and starts when the backend comes back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ledger import migrate
from ledger.db import create_engine
from ledger.lifecycle import JobStatus
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.backends import postgres_admin_url
from tests.factories import request
from tests.faults.conftest import QUEUE, WorkerProcess, Workers
from tests.queue_fixtures import OwnRedis, free_port, start_redis, wait_until

pytestmark = pytest.mark.slow

HANDLER = "tests.faults.handlers:mixed"


def waiting_lines(worker: WorkerProcess) -> list[str]:
    return [line for line in worker.stderr.read_text().splitlines() if " waiting: " in line]


def completed(ledger: Ledger, job_id: str) -> bool:
    return ledger.job(job_id).status is JobStatus.COMPLETED


@pytest.mark.parametrize("db_backend", ["sqlite"])  # the database is not what this is about
def test_a_worker_started_before_redis_waits_for_it(db_url: str, tmp_path: object) -> None:
    port = free_port()
    group = Workers(db_url, f"redis://127.0.0.1:{port}/0", tmp_path)  # type: ignore[arg-type]
    server: OwnRedis | None = None
    try:
        worker = group.start("--handler", HANDLER)
        wait_until(lambda: waiting_lines(worker), 60, "the worker to say it waits for Redis")
        assert worker.process.poll() is None
        server = start_redis(port)
        settings = Settings(database_url=db_url, redis_url=server.url, queue_name=QUEUE)
        ledger = build_ledger(settings)
        try:
            job_id = ledger.enqueue(request()).job_id
            wait_until(lambda: completed(ledger, job_id), 60, "the job")
        finally:
            ledger.close()
        worker.stop()
        assert len(waiting_lines(worker)) == 1  # one line per change, not one per retry
        assert "Traceback" not in worker.stderr.read_text()
    finally:
        group.kill_all()
        if server is not None:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_worker_started_while_redis_is_out_of_memory_starts_when_it_has_room(
    fault_ledger: Ledger, workers: Workers, private_redis: OwnRedis
) -> None:
    job_id = fault_ledger.store.enqueue(request(), max_attempts=3).job_id  # not in Redis yet
    admin = private_redis.client()
    admin.config_set("maxmemory", 1)
    try:
        worker = workers.start("--handler", HANDLER)
        wait_until(
            lambda: "recover failed" in worker.stderr.read_text(), 60, "the refused recovery"
        )
        assert worker.process.poll() is None
    finally:
        admin.config_set("maxmemory", 0)
    wait_until(lambda: completed(fault_ledger, job_id), 60, "the job")
    worker.stop()
    stderr = worker.stderr.read_text()
    assert "Traceback" not in stderr
    assert stderr.count("recover failed") == 1


@pytest.fixture
def closed_database() -> Iterator[str]:
    """A database of its own that refuses connections until opened (PostgreSQL)."""
    name = f"ledger_closed_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        postgres_admin_url(), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable: {exc.orig}")
    url = sa.make_url(postgres_admin_url()).set(database=name).render_as_string(False)
    migrate.upgrade(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_a_worker_started_while_the_database_refuses_waits_for_it(
    closed_database: str, private_redis: OwnRedis, tmp_path: object
) -> None:
    group = Workers(closed_database, private_redis.url, tmp_path)  # type: ignore[arg-type]
    name = sa.make_url(closed_database).database
    admin = create_engine(
        postgres_admin_url(), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        worker = group.start("--handler", HANDLER)
        wait_until(lambda: waiting_lines(worker), 60, "the worker to say it waits for the log")
        assert worker.process.poll() is None
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        settings = Settings(
            database_url=closed_database, redis_url=private_redis.url, queue_name=QUEUE
        )
        ledger = build_ledger(settings)
        try:
            job_id = ledger.enqueue(request()).job_id
            wait_until(lambda: completed(ledger, job_id), 60, "the job")
        finally:
            ledger.close()
        worker.stop()
        assert len(waiting_lines(worker)) == 1
    finally:
        group.kill_all()
        admin.dispose()
