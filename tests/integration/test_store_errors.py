"""The store's edge: driver errors by class and code, their text only in the log."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from ledger.db import create_engine
from ledger.errors import ConcurrencyError, DatabaseUnavailable
from ledger.events import EventType, NewEvent
from ledger.store import EventStore
from tests.factories import request


def test_a_unique_violation_on_job_and_version_is_a_concurrency_error(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = store.enqueue(request(), max_attempts=3).job_id
    real_open = store._sql.open

    def stale_open(conn: Connection, **looked_up: Any) -> Any:
        # a writer that read the version without the write lock: only the index stops it
        return dataclasses.replace(real_open(conn, **looked_up), versions={})

    monkeypatch.setattr(store._sql, "open", stale_open)
    with pytest.raises(ConcurrencyError) as caught:
        store.append(job, 0, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "w")])
    assert (caught.value.job_id, caught.value.expected, caught.value.actual) == (job, 0, 1)
    monkeypatch.undo()
    assert [event.version for event in store.read_stream(job)] == [1]


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_an_unreachable_server_is_unavailable_and_its_address_stays_in_the_log(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an in-process `alembic upgrade` (logging.config.fileConfig) disables existing loggers
    monkeypatch.setattr(logging.getLogger("ledger.db"), "disabled", False)
    engine = create_engine("postgresql+psycopg://ledger:hunter2@127.0.0.1:9/ledger")
    try:
        with caplog.at_level(logging.INFO, "ledger.db"), pytest.raises(DatabaseUnavailable) as e:
            EventStore(engine).head()
    finally:
        engine.dispose()
    assert "127.0.0.1" not in e.value.message and "hunter2" not in e.value.message
    assert "LEDGER_DATABASE_URL" in e.value.message
    assert any("database error" in record.getMessage() for record in caplog.records)


def test_a_database_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/no/such/dir/ledger.db")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            EventStore(engine).head()
    finally:
        engine.dispose()
    assert str(tmp_path) not in caught.value.message
