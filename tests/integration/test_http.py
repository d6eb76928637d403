"""The HTTP API through FastAPI's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from ledger.business_time import business_day
from ledger.http import create_app
from ledger.http.auth import BadTokenConfig
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings

TOKENS = {
    "auditor": "auditor-token-0123456789",
    "operator": "operator-token-0123456789",
    "service": "service-token-0123456789",
}
TOKEN_SPEC = ",".join(f"{role}:{token}" for role, token in TOKENS.items())

BODY: dict[str, Any] = {
    "userId": "user-1",
    "placeId": "place-1",
    "missionId": "mission-1",
    "amount": 10_000,
    "currency": "KRW",
    "idempotencyKey": "scan-1",
    "metadata": {"qrToken": "secret-qr", "receiptId": "r-1"},
}


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC))
    yield built
    built.close()


@pytest.fixture
def client(ledger: Ledger) -> TestClient:
    return TestClient(create_app(ledger))


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def enqueue(client: TestClient, **changes: Any) -> str:
    response = client.post("/api/settlements", json={**BODY, **changes}, headers=auth("service"))
    assert response.status_code == 201, response.text
    return str(response.json()["jobId"])


def test_enqueue_is_idempotent(client: TestClient) -> None:
    first = client.post("/api/settlements", json=BODY, headers=auth("service"))
    assert first.status_code == 201
    assert first.json()["created"] is True
    again = client.post("/api/settlements", json=BODY, headers=auth("service"))
    assert again.status_code == 200
    assert again.json() == {"jobId": first.json()["jobId"], "created": False, "queued": True}


def test_same_key_different_body_is_409(client: TestClient) -> None:
    enqueue(client)
    response = client.post(
        "/api/settlements", json={**BODY, "amount": 10_001}, headers=auth("service")
    )
    assert response.status_code == 409
    assert "already belongs to job" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 10.5}, "amount"),
        ({"amount": "1000"}, "amount"),
        ({"amount": -1}, "amount"),
        ({"currency": "usd"}, "currency"),
        ({"userId": ""}, "userId"),
        (
            {"metadata": {"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}},
            "metadata",
        ),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    response = client.post("/api/settlements", json={**BODY, **change}, headers=auth("service"))
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert "secret-qr" not in response.text


def test_job_state_and_history(client: TestClient) -> None:
    job_id = enqueue(client)
    state = client.get(f"/api/jobs/{job_id}", headers=auth("service")).json()
    assert state["state"] == "waiting"
    assert state["data"]["amount"] == 10_000 and state["data"]["userId"] == "user-1"
    history = client.get(f"/api/jobs/{job_id}/history", headers=auth("auditor")).json()
    assert history["jobId"] == job_id
    assert history["state"] == "waiting"
    (event,) = history["events"]
    assert set(event) == {"position", "version", "type", "data", "occurredAt", "actor"}
    assert event["type"] == "enqueued" and event["version"] == 1
    assert event["actor"] == "http:service"


def test_unknown_job_is_404(client: TestClient) -> None:
    response = client.get("/api/jobs/no-such-job", headers=auth("auditor"))
    assert response.status_code == 404


def test_fifty_concurrent_posts_with_one_key_make_one_job(client: TestClient) -> None:
    barrier = threading.Barrier(50)

    def post(_: int) -> tuple[int, str]:
        barrier.wait()
        response = client.post("/api/settlements", json=BODY, headers=auth("service"))
        return response.status_code, response.json()["jobId"]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(post, range(50)))
    assert len({job_id for _, job_id in results}) == 1
    assert sorted(code for code, _ in results) == [200] * 49 + [201]


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "paused": False}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["ok"] is True


def test_logs_carry_job_ids_not_tokens_or_metadata(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ledger.http"):
        job_id = enqueue(client)
    text = caplog.text
    assert job_id in text
    assert "scan-1" not in text  # the key is logged only as a hash
    assert "secret-qr" not in text
    assert all(token not in text for token in TOKENS.values())


# -- roles -------------------------------------------------------------------------------

# (method, path, body, roles allowed)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("POST", "/api/settlements", BODY, {"service"}),
    ("GET", "/api/jobs/{job}", None, {"auditor", "operator", "service"}),
    ("GET", "/api/jobs/{job}/history", None, {"auditor", "operator"}),
    ("GET", "/api/queue/stats", None, {"auditor", "operator"}),
    ("GET", "/api/queue/failed", None, {"auditor", "operator"}),
    ("POST", "/api/queue/dlq", {"jobId": "{job}"}, {"operator"}),
    ("POST", "/api/jobs/{job}/reverse", {"amount": 1, "reason": "r"}, {"operator"}),
    ("POST", "/api/jobs/{job}/refund", {"amount": 1, "reason": "r"}, {"operator"}),
    ("POST", "/api/jobs/{job}/repay", {"reason": "r"}, {"operator"}),
    ("POST", "/api/jobs/{job}/cancel", {"reason": "r"}, {"operator"}),
    ("GET", "/api/events", None, {"auditor"}),
    ("GET", "/api/totals", None, {"auditor"}),
    ("GET", "/metrics", None, {"auditor", "operator"}),
]


HEADERS_FOR_ROLE: dict[str, dict[str, str]] = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-a-real-token-at-all"},
}


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
@pytest.mark.parametrize("role", ["auditor", "operator", "service", "none", "wrong"])
def test_role_matrix(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    allowed: set[str],
    role: str,
) -> None:
    job_id = enqueue(client, idempotencyKey="matrix-seed")
    headers = HEADERS_FOR_ROLE[role] if role in HEADERS_FOR_ROLE else auth(role)
    if body is not None and "jobId" in body:
        body = {"jobId": job_id}
    response = client.request(method, path.format(job=job_id), json=body, headers=headers)
    if role in ("none", "wrong"):
        assert response.status_code == 401
    elif role in allowed:
        # allowed: past authorisation (a requeue of a waiting job is a 409, not a 403)
        assert response.status_code in (200, 201, 409), response.text
    else:
        assert response.status_code == 403


def test_bad_token_config_is_refused(db_url: str) -> None:
    for spec in ("auditor", "root:aaaaaaaaaaaaaaaaaaaa", "auditor:short"):
        with pytest.raises(BadTokenConfig):
            create_app(build_ledger(Settings(database_url=db_url, api_tokens=spec)))


def test_no_tokens_means_open_api(db_url: str) -> None:
    ledger = build_ledger(Settings(database_url=db_url))
    client = TestClient(create_app(ledger))
    assert client.post("/api/settlements", json=BODY).status_code == 201
    ledger.close()


# -- the queue endpoints (with jobs moved through the lifecycle by the service) -----------------


def settle(ledger: Ledger, outcomes: list[str]) -> None:
    """Claim every waiting job and give each the next outcome: done, retry or dead."""
    jobs = ledger.claim("test-worker", len(outcomes), timedelta(seconds=30))
    assert len(jobs) == len(outcomes)
    for job, outcome in zip(sorted(jobs, key=lambda j: j.request.amount), outcomes, strict=True):
        if outcome == "done":
            ledger.complete(job, job.attempt)
        else:
            ledger.fail(job, job.attempt, f"gateway said no ({outcome})", retryable=False)


def test_stats_failed_and_requeue(client: TestClient, ledger: Ledger) -> None:
    ids = [enqueue(client, idempotencyKey=f"k{n}", amount=1000 + n) for n in range(4)]
    settle(ledger, ["done", "dead", "dead", "done"])
    enqueue(client, idempotencyKey="still-waiting", amount=7)

    stats = client.get("/api/queue/stats", headers=auth("operator")).json()
    assert stats["status"] in ("healthy", "degraded")
    assert {"waiting", "processing", "dlq", "delayed", "total"} <= set(stats["stats"])
    counts = {k: stats["stats"][k] for k in ("waiting", "processing", "dlq", "delayed", "total")}
    assert counts == {"waiting": 1, "processing": 0, "dlq": 2, "delayed": 0, "total": 5}
    assert stats["stats"]["completed"] == 2
    assert stats["timestamp"].endswith("Z")

    failed = client.get("/api/queue/failed?start=0&end=10", headers=auth("auditor")).json()
    assert failed["count"] == 2
    assert failed["range"] == {"start": 0, "end": 10}
    newest = failed["jobs"][0]
    assert set(newest) >= {"id", "data", "failedReason", "attempts", "createdAt"}
    assert newest["data"]["amount"] in (1001, 1002) and newest["data"]["currency"] == "KRW"
    assert isinstance(newest["createdAt"], int) and newest["createdAt"] > 1_700_000_000_000
    assert newest["failedReason"].startswith("gateway said no")

    dead_id = newest["id"]
    requeued = client.post("/api/queue/dlq", json={"jobId": dead_id}, headers=auth("operator"))
    assert requeued.status_code == 200
    assert requeued.json() == {
        "success": True,
        "jobId": dead_id,
        "message": "Job requeued successfully",
    }
    history = client.get(f"/api/jobs/{dead_id}/history", headers=auth("auditor")).json()
    assert history["events"][-1]["type"] == "requeued"
    assert history["events"][-1]["actor"] == "http:operator"
    again = client.post("/api/queue/dlq", json={"jobId": dead_id}, headers=auth("operator"))
    assert again.status_code == 409 and again.json()["success"] is False
    unknown = client.post("/api/queue/dlq", json={"jobId": "nope"}, headers=auth("operator"))
    assert unknown.status_code == 404
    message = unknown.json()["message"]
    assert unknown.json() == {  # the replaced system's fields and the one error shape
        "success": False,
        "jobId": "nope",
        "message": message,
        "detail": message,
        "field": None,
        "errors": [],
    }
    assert ids[0] not in {job["id"] for job in failed["jobs"]}


def test_events_are_paged_and_filtered(client: TestClient, ledger: Ledger) -> None:
    for n in range(5):
        enqueue(client, idempotencyKey=f"e{n}", userId="alice" if n % 2 else "bob", amount=n + 1)
    settle(ledger, ["done"] * 5)
    first = client.get("/api/events?limit=4", headers=auth("auditor")).json()
    assert [e["position"] for e in first["events"]] == [1, 2, 3, 4]
    assert first["nextAfter"] == 4
    rest = client.get("/api/events?after=4&limit=1000", headers=auth("auditor")).json()
    assert rest["nextAfter"] is None
    assert len(first["events"]) + len(rest["events"]) == 15
    alice = client.get("/api/events?userId=alice&type=completed", headers=auth("auditor")).json()
    assert len(alice["events"]) == 2
    assert {e["userId"] for e in alice["events"]} == {"alice"}
    assert {"position", "occurredAt", "jobId", "amount", "currency", "hash"} <= set(
        alice["events"][0]
    )
    too_many = client.get("/api/events?limit=100000", headers=auth("auditor"))
    assert too_many.status_code == 422
    beyond = client.get(f"/api/events?after={2**63}", headers=auth("auditor"))
    assert beyond.status_code == 422  # found by schemathesis: a 64-bit overflow was a 500
    last = client.get(f"/api/events?after={2**63 - 1}", headers=auth("auditor"))
    assert last.status_code == 200 and last.json()["events"] == []


def test_totals_by_day_and_user(client: TestClient, ledger: Ledger) -> None:
    enqueue(client, idempotencyKey="t1", userId="alice", amount=100)
    enqueue(client, idempotencyKey="t2", userId="bob", amount=250)
    enqueue(client, idempotencyKey="t3", userId="bob", amount=5, currency="USD")
    settle(ledger, ["done", "done", "done"])
    by_day = client.get("/api/totals?groupBy=day", headers=auth("auditor")).json()
    assert {(t["currency"], t["amount"], t["jobs"]) for t in by_day["totals"]} == {
        ("KRW", 350, 2),
        ("USD", 5, 1),
    }
    by_user = client.get("/api/totals?groupBy=user", headers=auth("auditor")).json()
    assert {(t["currency"], t["userId"], t["amount"]) for t in by_user["totals"]} == {
        ("KRW", "alice", 100),
        ("KRW", "bob", 250),
        ("USD", "bob", 5),
    }
    assert client.get("/api/totals?groupBy=planet", headers=auth("auditor")).status_code == 422


def test_metrics_are_prometheus_text(client: TestClient, ledger: Ledger) -> None:
    enqueue(client)
    response = client.get("/metrics", headers=auth("auditor"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'ledger_queue_depth{place="ready"} 1.0' in text
    assert "ledger_log_position 1.0" in text
    assert "ledger_projection_lag_events" in text
    assert "ledger_attempt_duration_seconds" in text


def test_totals_per_day_are_business_days(db_url: str) -> None:
    seoul = build_ledger(
        Settings(database_url=db_url, api_tokens=TOKEN_SPEC, business_timezone="Asia/Seoul")
    )
    try:
        client = TestClient(create_app(seoul))
        enqueue(client, idempotencyKey="k1", amount=100)
        settle(seoul, ["done"])
        (completed,) = [e for e in seoul.store.read_all() if e.type.value == "completed"]
        by_day = client.get("/api/totals?groupBy=day", headers=auth("auditor")).json()
        expected = business_day(completed.occurred_at, ZoneInfo("Asia/Seoul")).isoformat()
        assert [(t["day"], t["amount"]) for t in by_day["totals"]] == [(expected, 100)]
    finally:
        seoul.close()
