"""The README's first command, as a newcomer runs it: a fresh venv, the built wheel, the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_the_demo_passes(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("settlement_ledger-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900)
    workdir = tmp_path / "newcomer"
    workdir.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    result = subprocess.run(
        [str(env_dir / "bin" / "ledger"), "demo", "--jobs", "200", "--seed", "3"],
        cwd=workdir,
        env={**environment, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OK  verify:" in out
    assert "OK  reconcile: projections:" in out
    assert "OK  reconcile: conservation:" in out
    assert "OK  reconcile: statement:" in out
    assert "FAILED" not in out
    assert "Traceback" not in result.stderr
    assert (workdir / "ledger-demo.db").exists()
    # the same file answers the CLI afterwards, as the demo's last lines suggest
    stats = subprocess.run(
        [str(env_dir / "bin" / "ledger"), "stats", "--json"],
        cwd=workdir,
        env={**environment, "LEDGER_DATABASE_URL": "sqlite:///ledger-demo.db"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert '"total":200' in stats.stdout
