"""Pause and resume over HTTP (operator), and where the state shows: stats, /health,
metrics; ``/ready`` stays ready while paused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.events import OPERATOR_STREAM, EventType
from ledger.http import create_app
from ledger.lifecycle import JobStatus
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from projections.runner import Projector
from tests.factories import request
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
    scraped = client.get("/metrics", headers=AUDITOR).text
    assert "ledger_queue_paused 1.0" in scraped and "ledger_queue_rate_limit 0.0" in scraped
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


def test_bulk_cancel_over_http_previews_then_runs_the_token(
    api: tuple[TestClient, Ledger],
) -> None:
    client, ledger = api
    ids = [ledger.enqueue(request(idempotency_key=f"k{n}")).job_id for n in range(2)]
    Projector(ledger.store).catch_up()
    body = {"action": "cancel", "filter": {"status": "waiting", "currency": "KRW"}}
    shown = client.post("/api/queue/bulk/preview", json=body, headers=OPERATOR)
    assert shown.status_code == 200, shown.text
    assert shown.json()["count"] == 2
    assert shown.json()["amounts"] == {"KRW": {"jobs": 2, "amount": 20_000}}
    assert client.post("/api/queue/bulk/preview", json=body, headers=AUDITOR).status_code == 403
    wrong = {**body, "token": "0" * 32, "reason": "outage"}
    assert client.post("/api/queue/bulk", json=wrong, headers=OPERATOR).status_code == 409
    run = {**body, "token": shown.json()["token"], "reason": "outage"}
    done = client.post("/api/queue/bulk", json=run, headers=OPERATOR)
    assert done.status_code == 200 and done.json()["done"] == 2
    assert {ledger.job(job_id).status for job_id in ids} == {JobStatus.CANCELLED}


def test_the_rate_limit_over_http_and_in_the_stats(api: tuple[TestClient, Ledger]) -> None:
    client, _ = api
    body = {"attemptsPerSecond": 5, "reason": "provider allows 5/s"}
    answer = client.post("/api/queue/limits", json=body, headers=OPERATOR)
    assert answer.status_code == 200 and answer.json()["attemptsPerSecond"] == 5
    assert client.post("/api/queue/limits", json=body, headers=AUDITOR).status_code == 403
    stats = client.get("/api/queue/stats", headers=AUDITOR).json()
    assert stats["limits"] == {"attemptsPerSecond": 5}
    negative = client.post(
        "/api/queue/limits", json={**body, "attemptsPerSecond": -1}, headers=OPERATOR
    )
    assert negative.status_code == 422
