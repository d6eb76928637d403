"""The import contract (``.importlinter``) holds: imports point down only.

CI runs ``lint-imports`` too; this test makes a broken layer show up in the
test run of whoever breaks it (for instance a new module of ``ledger`` that no
layer of the contract names yet).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contract_holds() -> None:
    # in a process of its own: import-linter reconfigures logging in the process it runs in
    # (later tests that read logs through caplog then see nothing)
    contract = str(ROOT / ".importlinter")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            contract,
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " kept, 0 broken." in done.stdout


def test_http_routes_get_their_parts_through_typed_dependencies() -> None:
    """Only ``ledger.http.deps`` reads the app's state (and ``create_app`` fills it once);
    no ``type: ignore`` anywhere in the HTTP layer."""
    http = ROOT / "ledger" / "http"
    allowed = {http / "deps.py", http / "app.py"}
    for module in sorted(http.rglob("*.py")):
        text = module.read_text()
        assert "type: ignore" not in text, module
        if module not in allowed:
            assert "app.state" not in text, module
