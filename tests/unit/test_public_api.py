"""The public surface: ``ledger.__all__`` (types) and ``ledger.scripts.__all__`` (the script API).

Changing either list is an API change: update docs/scripts.md with it.
"""

from __future__ import annotations

import subprocess
import sys

import ledger
import ledger.scripts

LEDGER_API = {
    "ClaimedJob",
    "ConcurrencyError",
    "DatabaseUnavailable",
    "EventType",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidFilter",
    "InvalidRequest",
    "InvalidStatement",
    "Job",
    "JobNotFound",
    "JobStatus",
    "LedgerError",
    "NaiveTime",
    "PermanentFailure",
    "PositionPastHead",
    "ProviderRefused",
    "ProviderResult",
    "RecordConflict",
    "SchemaNotReady",
    "SettlementRequest",
    "StoredEvent",
    "TooMuchBack",
    "WrongState",
}

SCRIPTS_API = {
    "AnchorStatus",
    "CheckResult",
    "Connection",
    "CurrencyBalance",
    "DlqEntry",
    "Handler",
    "JobRecord",
    "LogState",
    "Mismatch",
    "Period",
    "QueueStats",
    "ReconcileReport",
    "Settlement",
    "StatementDiff",
    "StatementLine",
    "TotalRow",
    "VerifyResult",
    "connect",
}

CONNECTION_METHODS = {
    "events",
    "follow",
    "head",
    "history",
    "reconcile",
    "settings",
    "state",
    "statement_diff",
    "statement_lines",
    "verify",
}


def test_ledger_exports_exactly_the_public_types() -> None:
    assert set(ledger.__all__) == LEDGER_API
    assert all(hasattr(ledger, name) for name in ledger.__all__)
    assert issubclass(ledger.PositionPastHead, ledger.LedgerError)


def test_the_script_api_is_ledger_scripts() -> None:
    assert set(ledger.scripts.__all__) == SCRIPTS_API
    assert all(hasattr(ledger.scripts, name) for name in ledger.scripts.__all__)
    public = {name for name in vars(ledger.scripts.Connection) if not name.startswith("_")}
    public |= {"settings"}  # set in __init__
    assert public == CONNECTION_METHODS
    # decided: not ledger.connect (see ledger.scripts' docstring and docs/scripts.md)
    assert not hasattr(ledger, "connect")


def test_importing_ledger_does_not_import_the_read_side() -> None:
    """``import ledger`` stays the core types: the read side imports it, never the reverse."""
    code = (
        "import sys, ledger; print(sorted(m for m in sys.modules if m.startswith('projections')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    # and either package imported first works (no import cycle)
    for first in ("projections.memory", "ledger.scripts", "projections.fold"):
        subprocess.run([sys.executable, "-c", f"import {first}, ledger.scripts"], check=True)
