"""Run the installed ``ledger`` command as a user would (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

LEDGER = [sys.executable, "-m", "ledger.cli.main"]

RunLedger = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_ledger(db_url: str, tmp_path: Path) -> RunLedger:
    """``run_ledger("enqueue", "--amount", "5", ...)`` against this test's database."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "LEDGER_DATABASE_URL": db_url, **(env or {})}
        return subprocess.run(
            [*LEDGER, *args],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    return run
