"""The services a run uses: its own redis-server, fresh PostgreSQL schemas, SQLite files.

The harness never flushes the shared Redis on 6379: it starts its own
``redis-server`` on a free port (no persistence) and flushes only that one.
PostgreSQL work happens in a fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.common import NotAvailable

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_redis(work_dir: Path) -> Iterator[str]:
    """A private redis-server for this run; yields ``redis://127.0.0.1:PORT``."""
    port = free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(work_dir),
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=(work_dir / "redis.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        _wait_for_redis(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_for_redis(url: str, proc: subprocess.Popen[bytes]) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotAvailable(f"redis-server exited with {proc.returncode}")
        try:
            client.ping()
            client.close()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise NotAvailable("redis-server did not answer within 10 s")


def flush(url: str) -> None:
    """FLUSHALL on the harness's own server (never the shared one)."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    version = str(client.info("server")["redis_version"])
    client.close()
    return version


def with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    query = dict(parsed.query)
    query["options"] = f"-csearch_path={schema}"
    return parsed.set(query=query).render_as_string(hide_password=False)


def libpq_conninfo(schema: str | None = None) -> str:
    """The same server as ``POSTGRES_URL`` as a libpq conninfo (procrastinate, raw psycopg)."""
    parsed = make_url(POSTGRES_URL)
    parts = [
        f"host={parsed.host}",
        f"port={parsed.port or 5432}",
        f"user={parsed.username}",
        f"dbname={parsed.database}",
    ]
    if schema:
        parts.append(f"options=-csearch_path={schema}")
    return " ".join(parts)


@contextmanager
def postgres_schema(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh schema; yields (schema name, SQLAlchemy URL with its search_path). Dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise NotAvailable(f"PostgreSQL is not reachable: {exc.orig}") from None
    try:
        yield schema, with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def postgres_version() -> str:
    try:
        engine = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            version = str(conn.exec_driver_sql("SHOW server_version").scalar_one())
        engine.dispose()
        return version
    except sa.exc.OperationalError:
        return "unreachable"


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the same server; yields its SQLAlchemy URL. Dropped after.

    The append lock is per events table (``pg_advisory_xact_lock`` keyed by the
    table's OID), so a schema would do; a database of its own also keeps the
    workload's catalog and statistics apart from other sessions' test schemas.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise NotAvailable(f"PostgreSQL is not reachable: {exc.orig}") from None
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@contextmanager
def ledger_database(backend: str, work_dir: Path) -> Iterator[str]:
    """A freshly migrated, empty ledger database on ``backend``; yields its URL.

    PostgreSQL: a fresh database (see ``postgres_database``), not only a schema.
    """
    from ledger import migrate

    if backend == "sqlite":
        path = work_dir / f"ledger-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with postgres_database("bench_ledger") as url:
        migrate.upgrade(url)
        yield url
