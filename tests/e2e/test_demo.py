"""``ledger demo`` is reproducible with a seed and ends with every auditor check OK."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(tmp_path: Path, name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", "demo", "--database", name, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def without_times(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", "T", text)
    text = re.sub(r"head [0-9a-f]{16}", "head H", text)  # hashes cover event times
    return re.sub(r"\d+:\d\d:\d\d", "0:00:00", text)  # progress bar elapsed time


@pytest.mark.slow
def test_demo_is_deterministic_and_checks_pass(tmp_path: Path) -> None:
    first = run_demo(tmp_path, "one.db", "--jobs", "150", "--seed", "11")
    second = run_demo(tmp_path, "two.db", "--jobs", "150", "--seed", "11")
    assert "OK  verify" in first and "FAILED" not in first
    assert "requeued by demo-operator" in first
    strip = lambda text: without_times(text).replace("two.db", "one.db")  # noqa: E731
    assert strip(first) == strip(second)
    other = run_demo(tmp_path, "three.db", "--jobs", "150", "--seed", "12")
    assert without_times(other) != without_times(first)
