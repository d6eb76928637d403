"""Shared fixtures. ``db_url``/``engine``/``store`` run every test on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ledger.db import create_engine
from ledger.store import EventStore
from tests.backends import SqliteTemplate, database_url

DATABASE_BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("template"))


@pytest.fixture(params=DATABASE_BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, sqlite_template: SqliteTemplate) -> Iterator[str]:
    with database_url(db_backend, tmp_path, sqlite_template) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> EventStore:
    return EventStore(engine)


# queue fixtures (fakeredis | real Redis, one queue per test, a wired Ledger)
from tests.pg_replica import pg_replica  # noqa: E402, F401
from tests.queue_fixtures import (  # noqa: E402, F401
    hot_queue,
    ledger,
    own_redis,
    queue_name,
    redis_backend,
    redis_client,
)
from tests.redis_cluster import redis_cluster  # noqa: E402, F401
from tests.toss_support import payouts, sleeps, toss  # noqa: E402, F401
