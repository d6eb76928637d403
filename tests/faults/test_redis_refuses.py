"""Redis refusing writes (out of memory under ``noeviction``; ``READONLY`` takes the same path).

A job committed to the log while Redis refuses it is the system's to queue, not
the caller's to retry: the enqueue reports it saved (``queued: false``), and the
sweep keeps it until Redis has taken it (issue 20, L1 and L2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.errors import QueueUnavailable
from ledger.http import create_app
from ledger.lifecycle import JobStatus
from ledger.service import Ledger, Outcome, build_ledger
from ledger.settings import Settings
from tests.factories import request
from tests.faults.conftest import QUEUE, ROOT
from tests.queue_fixtures import OwnRedis, holds, on_stacks

SERVICE_TOKEN = "service-token-0123456789"


@contextmanager
def out_of_memory(server: OwnRedis) -> Iterator[None]:
    """Redis at ``maxmemory`` under ``noeviction``: reads answer, writes are refused."""
    admin = server.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        yield
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()


@pytest.fixture
def refusing_ledger(db_url: str, private_redis: OwnRedis) -> Iterator[Ledger]:
    settings = Settings(
        database_url=db_url,
        redis_url=private_redis.url,
        queue_name=QUEUE,
        relay_grace_seconds=0,
        api_tokens=f"service:{SERVICE_TOKEN}",
    )
    ledger = build_ledger(settings)
    ledger.recover()  # the queue exists (its sentinel is set), as under a running worker
    yield ledger
    ledger.close()


def test_a_refused_push_is_queue_unavailable(
    refusing_ledger: Ledger, private_redis: OwnRedis
) -> None:
    with out_of_memory(private_redis), pytest.raises(QueueUnavailable, match="refuses writes"):
        refusing_ledger.queue.push([("job-1", 0)])


def test_the_sweep_keeps_a_refused_job_until_redis_takes_it(
    refusing_ledger: Ledger, private_redis: OwnRedis
) -> None:
    # committed by a writer whose push never happened (it crashed, or Redis refused it)
    job_id = refusing_ledger.store.enqueue(request(), max_attempts=3).job_id
    with out_of_memory(private_redis):
        for _ in range(3):  # sweeps while Redis refuses: each fails, none forgets the job
            with pytest.raises(QueueUnavailable):
                refusing_ledger.sweep()
    assert holds(refusing_ledger.queue, job_id) is None
    refusing_ledger.sweep()
    assert holds(refusing_ledger.queue, job_id) == "ready"


def test_a_failed_recovery_is_tried_again_whole(
    refusing_ledger: Ledger, private_redis: OwnRedis
) -> None:
    job_id = refusing_ledger.store.enqueue(request(), max_attempts=3).job_id
    private_redis.client().flushall()  # Redis lost the queue: the sweep recovers
    with out_of_memory(private_redis), pytest.raises(QueueUnavailable):
        refusing_ledger.sweep()
    assert refusing_ledger.sweep().recovered
    assert holds(refusing_ledger.queue, job_id) == "ready"


def test_enqueue_reports_a_saved_job_as_not_yet_queued(
    refusing_ledger: Ledger, private_redis: OwnRedis
) -> None:
    with out_of_memory(private_redis):
        result = refusing_ledger.enqueue(request())
        again = refusing_ledger.enqueue(request())
    assert result.created and not result.queued
    assert again.job_id == result.job_id and not again.created
    assert refusing_ledger.job(result.job_id).status is JobStatus.WAITING
    refusing_ledger.sweep()
    assert holds(refusing_ledger.queue, result.job_id) == "ready"


def test_http_answers_201_queued_false_for_a_saved_job(
    refusing_ledger: Ledger, private_redis: OwnRedis
) -> None:
    client = TestClient(create_app(refusing_ledger))
    body = {
        "userId": "u",
        "placeId": "p",
        "missionId": "m",
        "amount": 10_000,
        "currency": "KRW",
        "idempotencyKey": "scan-oom",
        "metadata": {},
    }
    with out_of_memory(private_redis):
        response = client.post(
            "/api/settlements", json=body, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
        )
    assert response.status_code == 201, response.text
    job_id = response.json()["jobId"]
    assert response.json() == {"jobId": job_id, "created": True, "queued": False}
    assert refusing_ledger.job(job_id).status is JobStatus.WAITING


def test_cli_enqueue_prints_the_job_and_one_warning(
    db_url: str, private_redis: OwnRedis, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        "PYTHONPATH": str(ROOT),
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_REDIS_URL": private_redis.url,
        "LEDGER_QUEUE_NAME": QUEUE,
    }
    args = ["--user-id", "u", "--place-id", "p", "--mission-id", "m", "--amount", "500"]
    with out_of_memory(private_redis):
        done = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "enqueue", *args, "--idempotency-key", "K"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (warning,) = done.stderr.strip().splitlines()
    assert warning.startswith("warning: job ") and "Redis" in warning
    (job_id,) = done.stdout.split()
    assert job_id in warning
    settings = Settings(database_url=db_url, redis_url=private_redis.url, queue_name=QUEUE)
    ledger = build_ledger(settings)
    try:
        assert ledger.job(job_id).status is JobStatus.WAITING
    finally:
        ledger.close()


@on_stacks([("sqlite", "fakeredis")])
def test_a_claim_whose_redis_repair_fails_after_the_commit_still_hands_out_its_jobs(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = timedelta(seconds=30)
    held_id = ledger.enqueue(request(idempotency_key="held")).job_id
    (held,) = ledger.claim("w1", 1, lease)
    other = ledger.enqueue(request(idempotency_key="other")).job_id
    ledger.queue.move([(held_id, 0)])  # a second copy in ready: the claim repairs it

    def refused(*_args: object) -> object:
        raise QueueUnavailable("Redis refuses writes for now: test")

    monkeypatch.setattr(ledger.queue, "finish", refused)
    results, claimed = ledger.exchange("w1", [Outcome(held)], 5, lease)
    assert results[0].state is not None and results[0].state.status is JobStatus.COMPLETED
    # the claim's `attempted` is in the log: its job is handed out, not left to the reaper
    assert [job.id for job in claimed.jobs] == [other]
