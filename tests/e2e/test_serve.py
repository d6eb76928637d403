"""A real ``ledger serve`` process, hit over HTTP (PostgreSQL and SQLite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKENS = "auditor:auditor-token-0123456789,service:service-token-0123456789"
SERVICE = {"Authorization": "Bearer service-token-0123456789"}
AUDITOR = {"Authorization": "Bearer auditor-token-0123456789"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": db_url, "LEDGER_API_TOKENS": TOKENS}
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


def test_main_paths_over_real_http(server: str) -> None:
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
