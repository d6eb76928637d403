"""A real ``ledger serve`` process, hit over HTTP (PostgreSQL and SQLite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ledger.service import build_ledger
from ledger.settings import Settings
from tests.backends import REDIS_URL

TOKENS = (
    "auditor:auditor-token-0123456789,service:service-token-0123456789,"
    "operator:operator-token-0123456789"
)
SERVICE = {"Authorization": "Bearer service-token-0123456789"}
AUDITOR = {"Authorization": "Bearer auditor-token-0123456789"}
OPERATOR = {"Authorization": "Bearer operator-token-0123456789"}


@pytest.fixture
def settings(db_url: str, db_backend: str) -> Settings:
    """PostgreSQL runs with the real Redis (a queue of its own); SQLite embedded."""
    if db_backend == "postgres":
        return Settings(
            database_url=db_url, redis_url=REDIS_URL, queue_name=f"t{uuid.uuid4().hex[:10]}"
        )
    return Settings(database_url=db_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": settings.database_url,
        "LEDGER_API_TOKENS": TOKENS,
        "LEDGER_QUEUE_NAME": settings.queue_name,
    }
    if settings.redis_url:
        env["LEDGER_REDIS_URL"] = settings.redis_url
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("ledger serve did not start: " + (tmp_path / "serve.log").read_text())
    yield base
    process.terminate()
    process.wait(10)
    log.close()


def test_main_paths_over_real_http(server: str, settings: Settings) -> None:
    body = {
        "userId": "user-1",
        "placeId": "place-1",
        "missionId": "mission-1",
        "amount": 10_000,
        "currency": "KRW",
        "idempotencyKey": "scan-xyz",
        "metadata": {"qrToken": "q", "receiptId": "r"},
    }
    created = httpx.post(f"{server}/api/settlements", json=body, headers=SERVICE)
    assert created.status_code == 201
    job_id = created.json()["jobId"]
    again = httpx.post(f"{server}/api/settlements", json=body, headers=SERVICE)
    assert again.status_code == 200 and again.json()["jobId"] == job_id
    assert httpx.post(f"{server}/api/settlements", json=body).status_code == 401
    history = httpx.get(f"{server}/api/jobs/{job_id}/history", headers=AUDITOR).json()
    assert [e["type"] for e in history["events"]] == ["enqueued"]
    assert httpx.get(f"{server}/ready").json()["status"] == "ready"
    assert httpx.get(f"{server}/docs").status_code == 200
    stats = httpx.get(f"{server}/api/queue/stats", headers=AUDITOR).json()
    assert stats["stats"]["total"] == 1 and stats["stats"]["waiting"] == 1
    assert stats["status"] == "healthy"


def test_dead_letter_and_requeue_over_real_http(
    server: str, settings: Settings, db_backend: str
) -> None:
    if db_backend == "sqlite":
        pytest.skip("the embedded queue lives inside the server process")
    body = {"userId": "u", "placeId": "p", "missionId": "m", "amount": 5, "idempotencyKey": "d"}
    job_id = httpx.post(f"{server}/api/settlements", json=body, headers=SERVICE).json()["jobId"]
    ledger = build_ledger(settings)  # a worker elsewhere, on the same PostgreSQL and Redis
    try:
        (job,) = ledger.claim("remote-worker", 1, timedelta(seconds=30))
        ledger.fail(job, job.attempt, "card declined", retryable=False)
    finally:
        ledger.close()
    failed = httpx.get(f"{server}/api/queue/failed", headers=AUDITOR).json()
    assert [j["id"] for j in failed["jobs"]] == [job_id]
    assert failed["jobs"][0]["failedReason"] == "card declined"
    requeued = httpx.post(f"{server}/api/queue/dlq", json={"jobId": job_id}, headers=OPERATOR)
    assert requeued.json()["success"] is True
    stats = httpx.get(f"{server}/api/queue/stats", headers=AUDITOR).json()["stats"]
    assert (stats["dlq"], stats["waiting"]) == (0, 1)
    metrics = httpx.get(f"{server}/metrics", headers=AUDITOR).text
    assert 'ledger_queue_depth{place="ready"} 1.0' in metrics


def test_serve_refuses_public_bind_without_tokens(db_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_API_TOKENS"}
    env["LEDGER_DATABASE_URL"] = db_url
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--host", "0.0.0.0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr
