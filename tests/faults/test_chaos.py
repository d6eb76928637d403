"""The seeded stacked-fault run in CI: one minute of faults, two seeds, each backend.

``python -m tests.faults.chaos --seed N --minutes M --backend B`` runs it by hand
(``--minutes 10`` for the documented ten-minute run); a failing seed reruns the
same fault schedule.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.faults.chaos_parts import ROOT

pytestmark = pytest.mark.slow

CHAOS = [sys.executable, "-m", "tests.faults.chaos"]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.timeout(900)
def test_one_minute_of_stacked_faults(backend: str, seed: int) -> None:
    done = subprocess.run(
        [*CHAOS, "--seed", str(seed), "--minutes", "1", "--backend", backend],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"RESULT: ok (seed {seed}" in done.stdout
