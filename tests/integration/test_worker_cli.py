"""``ledger worker``, ``ledger recover`` and ``ledger dlq requeue`` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from ledger.lifecycle import JobStatus
from ledger.service import Ledger
from tests.factories import request
from tests.queue_fixtures import (
    OwnRedis,
    delete_queue_keys,
    free_port,
    holds,
    start_redis,
    summarise,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
LEDGER = [sys.executable, "-m", "ledger.cli.main"]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db_backend() -> str:
    return "sqlite"  # the CLI's wiring is backend-neutral; the stacks run in-process


@pytest.fixture
def redis_backend() -> str:
    return "redis"  # the `ledger` fixture's queue; embedded workers bring their own


def environment(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "LEDGER_DATABASE_URL": db_url,
            "LEDGER_SWEEP_SECONDS": "0.1",
            "LEDGER_RELAY_GRACE_SECONDS": "0.2",
            "LEDGER_RETRY_BASE_SECONDS": "0.01",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def run(db_url: str, tmp_path: Path) -> Run:
    def run_ledger(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LEDGER, *args],
            capture_output=True,
            text=True,
            env=environment(db_url, **extra),
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    return run_ledger


def enqueue_cli(run: Run, key: str, **extra: str) -> str:
    done = run(
        "enqueue",
        "--user-id",
        "u1",
        "--place-id",
        "p1",
        "--mission-id",
        "m1",
        "--amount",
        "10000",
        "--idempotency-key",
        key,
        "--json",
        **extra,
    )
    assert done.returncode == 0, done.stderr
    return str(orjson.loads(done.stdout)["jobId"])


def test_embedded_worker_runs_jobs_enqueued_by_other_processes(run: Run, ledger: Ledger) -> None:
    ids = [enqueue_cli(run, f"k{n}") for n in range(2)]
    done = run("worker", "--handler", "tests.faults.handlers:ok", "--burst", "--concurrency", "2")
    assert done.returncode == 0, done.stderr
    stats = orjson.loads(done.stdout)
    assert (stats["completed"], stats["refused"], stats["delayedLeft"]) == (2, 0, 0)
    summary = summarise(ledger.store)
    assert sorted(summary.completions) == sorted(ids)
    assert summary.duplicated == {} and summary.lost == []


def test_embedded_worker_relays_new_jobs_and_stops_gracefully(
    run: Run, ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    worker = subprocess.Popen(
        [*LEDGER, "worker", "--handler", "tests.faults.handlers:ok"],
        env=environment(db_url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = enqueue_cli(run, "late")
        wait_until(lambda: ledger.job(job_id).status is JobStatus.COMPLETED, 60, "the relayed job")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert orjson.loads(out)["completed"] == 1


def test_dlq_requeue(run: Run, ledger: Ledger) -> None:
    job_id = ledger.enqueue(request(), max_attempts=1).job_id
    (held,) = ledger.claim("w1", 1, timedelta(seconds=30))
    ledger.fail(held, 1, "boom")
    redis_env = _redis_env(ledger)
    done = run("dlq", "requeue", job_id, "--actor", "alice", "--reason", "fixed", **redis_env)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {"jobId": job_id, "status": "waiting", "version": 5}
    event = ledger.store.read_stream(job_id)[-1]
    assert (event.actor, event.data["reason"], event.data["source"]) == ("alice", "fixed", "dlq")
    assert holds(ledger.queue, job_id) == "ready"
    again = run("dlq", "requeue", job_id, **redis_env)
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and "not dead-lettered" in again.stderr
    assert "Traceback" not in again.stderr


def test_recover_cli_rebuilds_the_queue(run: Run, ledger: Ledger) -> None:
    job_id = ledger.enqueue(request()).job_id
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)
    done = run("recover", **_redis_env(ledger))
    assert done.returncode == 0, done.stderr
    assert "1 live jobs, 1 pushed" in done.stdout
    assert holds(ledger.queue, job_id) == "ready"


def test_bad_handler_is_one_clear_line(run: Run) -> None:
    done = run("worker", "--handler", "no_such_module:handle", "--burst")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot import handler module")
    assert "Traceback" not in done.stderr


@pytest.fixture
def evicting_redis() -> Iterator[OwnRedis]:
    server = start_redis(free_port(), "--maxmemory-policy", "allkeys-lru")
    yield server
    server.process.kill()
    server.process.wait(timeout=10)


def test_worker_refuses_an_evicting_redis(run: Run, evicting_redis: OwnRedis) -> None:
    done = run(
        "worker",
        "--handler",
        "tests.faults.handlers:ok",
        "--burst",
        LEDGER_REDIS_URL=evicting_redis.url,
    )
    assert done.returncode == 1
    assert "maxmemory-policy is 'allkeys-lru'" in done.stderr
    assert "noeviction" in done.stderr and "Traceback" not in done.stderr


def _redis_env(ledger: Ledger) -> dict[str, str]:
    pool = ledger.queue.client.connection_pool.connection_kwargs
    url = f"redis://{pool['host']}:{pool['port']}/{pool.get('db', 0)}"
    return {"LEDGER_REDIS_URL": url, "LEDGER_QUEUE_NAME": ledger.queue.keys.queue}
