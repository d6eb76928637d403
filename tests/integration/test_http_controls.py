"""Pause and resume over HTTP (operator), and where the state shows: stats, /health,
metrics; ``/ready`` stays ready while paused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.events import OPERATOR_STREAM, EventType
from ledger.http import create_app
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.integration.test_http import TOKEN_SPEC, auth

OPERATOR = auth("operator")
AUDITOR = auth("auditor")


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, Ledger]]:
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC))
    yield TestClient(create_app(built)), built
    built.close()


def test_an_operator_pauses_and_resumes_over_http(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    answer = client.post("/api/queue/pause", json={"reason": "provider down"}, headers=OPERATOR)
    assert answer.status_code == 200
    assert answer.json()["paused"] is True and answer.json()["appended"] is True
    assert answer.json()["actor"] == "http:operator"
    again = client.post("/api/queue/pause", json={"reason": "twice"}, headers=OPERATOR)
    assert again.json()["appended"] is False
    assert client.get("/api/queue/controls", headers=AUDITOR).json()["paused"] is True
    assert client.get("/api/queue/stats", headers=AUDITOR).json()["paused"] is True
    assert client.get("/health").json() == {"status": "ok", "paused": True}
    assert client.get("/ready").status_code == 200
    assert "ledger_queue_paused 1.0" in client.get("/metrics", headers=AUDITOR).text
    resumed = client.post("/api/queue/resume", json={"reason": "back"}, headers=OPERATOR)
    assert resumed.json()["paused"] is False
    kinds = [e.type for e in ledger.store.read_stream(OPERATOR_STREAM)]
    assert kinds == [EventType.PAUSED, EventType.RESUMED]


def test_an_auditor_may_not_pause(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    answer = client.post("/api/queue/pause", json={"reason": "no"}, headers=AUDITOR)
    assert answer.status_code == 403
    assert client.post("/api/queue/pause", json={"reason": "no"}).status_code == 401
    assert ledger.store.read_stream(OPERATOR_STREAM) == []
