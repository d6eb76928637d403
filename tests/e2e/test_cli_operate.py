"""``ledger pause`` / ``ledger resume`` as an operator runs them."""

from __future__ import annotations

import json

from tests.e2e.conftest import RunLedger


def test_pause_and_resume_from_the_command_line(run_ledger: RunLedger) -> None:
    assert run_ledger("init").returncode == 0
    paused = run_ledger("pause", "--actor", "ana", "--reason", "provider down")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) | {"changedAt": None} == {
        "paused": True,
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
