"""``bench.latest``: one result file per workload, the latest run's figures per system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import latest
from bench.common import Outcome


def meta(started: str) -> dict[str, Any]:
    machine = {
        "nproc": 2, "memory": "1Gi", "python": "3", "redis": "7", "postgres": "15",
        "sqlite": "3", "loadavg_at_start": [0, 0, 0],
    }  # fmt: skip
    sizes = {"repeats": 1, "queue_repeats": 1, "jobs": 10, "retry_jobs": 5, "mid_log": 1,
             "big_log": 2}  # fmt: skip
    return {"started": started, "quick": False, "sizes": sizes, "machine": machine}


def test_a_run_overwrites_the_systems_it_measured_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(latest, "RESULTS", tmp_path)
    first = [
        Outcome("ledger-sqlite", "drain-2", {"jobs_per_s": 1.0}),
        Outcome("dramatiq", "drain-2", {"jobs_per_s": 2.0}),
        Outcome("ledger-sqlite", "append-single", {"events_per_s": 3.0}),
    ]
    latest.save(meta("run-1"), first, quick=False)
    latest.save(
        meta("run-2"), [Outcome("ledger-sqlite", "drain-2", {"jobs_per_s": 9.0})], quick=False
    )

    document = orjson.loads((tmp_path / "drain-2.json").read_bytes())
    assert {(o["system"], o["run"], o["figures"]["jobs_per_s"]) for o in document["outcomes"]} == {
        ("dramatiq", "run-1", 2.0),
        ("ledger-sqlite", "run-2", 9.0),
    }
    assert sorted(document["runs"]) == ["run-1", "run-2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "append-single.json",
        "drain-2.json",
        "latest.md",
    ]
    assert "drain-2`: runs run-1, run-2" in (tmp_path / "latest.md").read_text()


def test_quick_runs_keep_their_own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latest, "RESULTS", tmp_path)
    latest.save(meta("q"), [Outcome("ledger-sqlite", "drain-2", {"jobs_per_s": 1.0})], quick=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "drain-2.quick.json",
        "latest-quick.md",
    ]
