"""The import contract (``.importlinter``) holds: imports point down only.

CI runs ``lint-imports`` too; this test makes a broken layer show up in the
test run of whoever breaks it (for instance a new module of ``ledger`` that no
layer of the contract names yet).
"""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contract_holds() -> None:
    contract = str(ROOT / ".importlinter")
    assert lint_imports(config_filename=contract, no_cache=True, no_logo=True) == 0


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
