"""``ledger pause`` / ``ledger resume`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import RunLedger
from tests.e2e.test_cli_log import ARGS


def test_pause_and_resume_from_the_command_line(run_ledger: RunLedger) -> None:
    assert run_ledger("init").returncode == 0
    paused = run_ledger("pause", "--actor", "ana", "--reason", "provider down")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) | {"changedAt": None} == {
        "paused": True,
        "attemptsPerSecond": None,
        "version": 1,
        "changedAt": None,
        "actor": "ana",
        "reason": "provider down",
        "appended": True,
    }
    stats = run_ledger("stats", "--json")
    assert json.loads(stats.stdout)["paused"] is True
    resumed = run_ledger("resume", "--actor", "ana", "--reason", "provider back")
    assert json.loads(resumed.stdout)["paused"] is False
    refused = run_ledger("pause", "--actor", "ana", "--reason", "bell\x07")
    assert refused.returncode == 2


def test_bulk_cancel_from_the_command_line(run_ledger: RunLedger) -> None:
    assert run_ledger("init").returncode == 0
    for key in ("a", "b"):
        args = [*ARGS, "--amount", "10000", "--idempotency-key", key, "--json"]
        assert run_ledger("enqueue", *args).returncode == 0
    assert run_ledger("project").returncode == 0
    dry = run_ledger("bulk", "cancel", "--status", "waiting", "--user", "u1")
    assert dry.returncode == 0, dry.stderr
    shown = json.loads(dry.stdout)
    assert shown["dryRun"] is True and shown["count"] == 2
    done = run_ledger(
        "bulk", "cancel", "--status", "waiting", "--user", "u1",
        "--confirm", shown["token"], "--actor", "ana", "--reason", "outage",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 2
    stale = run_ledger("bulk", "cancel", "--status", "waiting", "--confirm", "f" * 32)
    assert stale.returncode == 2


def test_a_burst_worker_on_a_paused_queue_says_so(run_ledger: RunLedger, tmp_path: Path) -> None:
    """A separate process on the embedded queue: the pause comes from the log alone."""
    (tmp_path / "h25.py").write_text("def ok(job):\n    pass\n")
    assert run_ledger("init").returncode == 0
    args = [*ARGS, "--amount", "10000", "--idempotency-key", "p1", "--json"]
    assert run_ledger("enqueue", *args).returncode == 0
    assert run_ledger("pause", "--actor", "ana", "--reason", "provider down").returncode == 0
    worker = run_ledger(
        "worker", "--burst", "--handler", "h25:ok", env={"PYTHONPATH": str(tmp_path)}
    )
    assert worker.returncode == 0, worker.stderr
    stats = json.loads(worker.stdout)
    assert (stats["claimed"], stats["paused"]) == (0, True)
    assert "the queue is paused" in worker.stderr
