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
