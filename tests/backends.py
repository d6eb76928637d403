"""Test backends: a migrated SQLite file or a fresh PostgreSQL schema, and Redis.

In CI (``CI=true``) a service that cannot be reached fails the test instead of
skipping it, so a green run always means both backends were exercised.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ledger import migrate
from ledger.db import create_engine, normalise_url

POSTGRES_URL = os.environ.get(
    "LEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, why: object) -> None:
    """Skip locally, fail in CI."""
    message = f"{what} is not reachable: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


def postgres_admin_url() -> str:
    return normalise_url(POSTGRES_URL)


def with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    query = dict(parsed.query)
    query["options"] = f"-csearch_path={schema}"
    return parsed.set(query=query).render_as_string(hide_password=False)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh, empty schema; yields a URL whose search_path points at it."""
    admin_url = postgres_admin_url()
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, poolclass=sa.pool.NullPool)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable("PostgreSQL", exc.orig)
    try:
        yield with_search_path(admin_url, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


class SqliteTemplate:
    """Migrate once per session, copy the file per test (migrating costs ~100 ms)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        migrate.upgrade(f"sqlite:///{self.path}")

    def fresh(self, directory: Path) -> str:
        target = directory / "ledger.db"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"


@contextmanager
def database_url(backend: str, tmp_path: Path, template: SqliteTemplate) -> Iterator[str]:
    """A migrated, empty ledger database on ``backend``."""
    if backend == "sqlite":
        yield template.fresh(tmp_path)
        return
    with postgres_schema() as url:
        migrate.upgrade(url)
        yield url
