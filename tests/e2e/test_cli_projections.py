"""``ledger stats | history | replay | project | dlq list`` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.events import EventType, NewEvent, format_time
from ledger.store import EventStore
from projections import queries
from projections.memory import MemoryProjection
from projections.schema import LIVE
from projections.snapshot import read_snapshot
from tests.e2e.conftest import LEDGER, RunLedger
from tests.factories import request
from tests.projection_logs import append_plan, seeded_plan

E = EventType


def seed(store: EventStore) -> dict[str, str]:
    """One job in each state: waiting, processing, completed, dead."""
    jobs = {
        name: store.enqueue(
            request(idempotency_key=name, user_id=f"user-{name}"), max_attempts=2
        ).job_id
        for name in ("waiting", "processing", "completed", "dead")
    }
    for name in ("processing", "completed", "dead"):
        store.append(jobs[name], 1, [NewEvent(E.ATTEMPTED, {"attempt": 1}, "worker-7")])
    store.append(jobs["completed"], 2, [NewEvent(E.COMPLETED, {"attempt": 1}, "worker-7")])
    store.append(
        jobs["dead"],
        2,
        [
            NewEvent(E.FAILED, {"attempt": 1, "reason": "card declined"}, "worker-7"),
            NewEvent(E.DEAD_LETTERED, {"attempt": 1, "reason": "not retryable"}, "worker-7"),
        ],
    )
    return jobs


def json_of(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert result.returncode == 0, result.stderr
    value = orjson.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert "Traceback" not in result.stderr


def test_stats_json_is_the_api_object(run_ledger: RunLedger, store: EventStore) -> None:
    empty = json_of(run_ledger("stats", "--json"))
    assert empty["status"] == "healthy" and empty["stats"]["total"] == 0
    seed(store)
    found = json_of(run_ledger("stats", "--json"))
    stats = found["stats"]
    counts = {
        k: stats[k] for k in ("waiting", "delayed", "processing", "dlq", "completed", "total")
    }
    assert counts == {
        "waiting": 1,
        "delayed": 0,
        "processing": 1,
        "dlq": 1,
        "completed": 1,
        "total": 4,
    }
    assert stats["amounts"]["KRW"]["enqueued"] == 40_000
    assert found["timestamp"].endswith("Z") and found["position"] == 10
    table = run_ledger("stats")
    assert table.returncode == 0 and "completed" in table.stdout and "40,000" in table.stdout


def test_stats_as_of_replays_to_that_time(run_ledger: RunLedger, store: EventStore) -> None:
    first = store.enqueue(request(idempotency_key="a"), max_attempts=1)
    store.enqueue(request(idempotency_key="b"), max_attempts=1)
    assert first.event is not None
    found = json_of(run_ledger("stats", "--json", "--as-of", format_time(first.event.occurred_at)))
    assert found["stats"]["total"] == 1 and found["position"] == 1
    one_error_line(run_ledger("stats", "--as-of", "yesterday"), 2, "invalid --as-of")


def test_stats_on_an_uninitialised_database(run_ledger: RunLedger, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-initialised.db'}"
    result = run_ledger("stats", env={"LEDGER_DATABASE_URL": url})
    one_error_line(result, 1, "run `ledger init` first")


def test_history(run_ledger: RunLedger, store: EventStore) -> None:
    jobs = seed(store)
    found = json_of(run_ledger("history", jobs["dead"], "--json"))
    assert found["jobId"] == jobs["dead"] and found["state"] == "dead"
    assert [e["type"] for e in found["events"]] == [
        "enqueued",
        "attempted",
        "failed",
        "dead_lettered",
    ]
    assert [e["version"] for e in found["events"]] == [1, 2, 3, 4]
    assert found["events"][2]["data"]["reason"] == "card declined"
    assert found["events"][1]["actor"] == "worker-7"
    table = run_ledger("history", jobs["dead"], env={"COLUMNS": "200"})
    assert table.returncode == 0
    for text in ("dead_lettered", "worker-7", "card declined", "user-dead"):
        assert text in table.stdout
    one_error_line(run_ledger("history", "no-such-job"), 2, "no job 'no-such-job'")


def test_dlq_list(run_ledger: RunLedger, store: EventStore) -> None:
    jobs = seed(store)
    found = json_of(run_ledger("dlq", "list", "--json", "--start", "0", "--end", "9"))
    assert found["count"] == 1 and found["range"] == {"start": 0, "end": 9}
    (job,) = found["jobs"]
    assert job["id"] == jobs["dead"] and job["failedReason"] == "card declined"
    assert job["data"]["userId"] == "user-dead" and job["data"]["amount"] == 10_000
    assert job["attempts"] == 1 and isinstance(job["createdAt"], int)
    table = run_ledger("dlq", "list", env={"COLUMNS": "200"})
    assert table.returncode == 0 and "card declined" in table.stdout
    one_error_line(run_ledger("dlq", "list", "--start", "5", "--end", "1"), 2, "invalid range")


def test_replay_and_check(run_ledger: RunLedger, store: EventStore, engine: Engine) -> None:
    seed(store)
    prefix = json_of(run_ledger("replay", "--until-position", "5", "--json"))
    assert prefix["position"] == 5 and prefix["stats"]["total"] == 4
    assert prefix["stats"]["waiting"] == 3 and prefix["stats"]["processing"] == 1
    assert run_ledger("project").returncode == 0
    ok = run_ledger("replay", "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok:" in ok.stdout
    with engine.begin() as conn:
        conn.execute(sa.update(LIVE.dlq).values(failed_reason="rewritten"))
    bad = run_ledger("replay", "--check")
    assert bad.returncode == 1
    assert "dlq: only in live" in bad.stdout and "rewritten" in bad.stdout
    report = orjson.loads(run_ledger("replay", "--check", "--json").stdout)
    assert report["ok"] is False and report["differences"] == 2
    one_error_line(run_ledger("replay", "--check", "--until-position", "2"), 2, "--check")


def test_project_and_rebuild(run_ledger: RunLedger, store: EventStore, engine: Engine) -> None:
    seed(store)
    result = run_ledger("project")
    assert result.returncode == 0 and "log position 10" in result.stdout
    with engine.begin() as conn:
        conn.execute(sa.delete(LIVE.job_state))
    rebuilt = run_ledger("project", "--rebuild", "--batch-size", "3")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "log position 10" in rebuilt.stdout and "events/s" in rebuilt.stderr
    assert queries.job(engine, seed.__name__) is None  # sanity: unknown ids stay unknown
    assert len(queries.dlq_page(engine).jobs) == 1


@pytest.mark.slow
def test_project_follow_until_sigterm(db_url: str, store: EventStore, engine: Engine) -> None:
    env = {**os.environ, "LEDGER_DATABASE_URL": db_url}
    process = subprocess.Popen(
        [*LEDGER, "project", "--follow", "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert "projections at log position 0" in process.stdout.readline()
        seed(store)
        deadline = time.monotonic() + 60
        while queries.checkpoint(engine) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queries.checkpoint(engine) == 10
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped at log position 10" in out


@pytest.mark.slow
def test_a_killed_runner_leaves_a_consistent_checkpoint(
    db_url: str, store: EventStore, engine: Engine
) -> None:
    for seed_number in range(40):
        append_plan(store, seeded_plan(seed_number, 25))
    head = store.head().position
    env = {**os.environ, "LEDGER_DATABASE_URL": db_url}
    process = subprocess.Popen(
        [*LEDGER, "project", "--batch-size", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while queries.checkpoint(engine) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        process.kill()  # SIGKILL: no clean-up, mid-batch or between batches
        process.wait()
    reached = queries.checkpoint(engine)
    assert 0 < reached < head
    expected = MemoryProjection().replay(store.read_all(until_position=reached))
    assert read_snapshot(engine) == expected.snapshot()
    assert run_and_check(db_url) == head
    assert read_snapshot(engine) == MemoryProjection().replay(store.read_all()).snapshot()


def run_and_check(db_url: str) -> int:
    env = {**os.environ, "LEDGER_DATABASE_URL": db_url}
    result = subprocess.run(
        [*LEDGER, "project"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split("log position ")[1].split()[0])
