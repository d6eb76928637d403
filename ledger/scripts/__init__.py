"""The public Python API for scripts that read, replay and follow the log.

    from ledger.scripts import connect

    with connect() as log:                      # LEDGER_DATABASE_URL, read-only
        for event in log.events(type="completed", since=start):
            ...

Everything a script needs is importable from here (or from ``ledger``: the
event and error types); the names in ``__all__`` are the API, pinned by
``tests/unit/test_public_api.py``. Every other module is internal and may
move. docs/scripts.md explains it with examples the test suite runs.

Why ``ledger.scripts.connect`` and not ``ledger.connect``: ``connect`` composes
the write side's log reader with the read side's folds (``projections``),
which import ``ledger``'s core; importing them from ``ledger/__init__.py``
would make ``import ledger`` import ``projections`` and turn every
``import projections.x`` into an import cycle. So ``ledger`` stays the core
types and this module sits on the top layer beside the CLI and HTTP.
"""

from ledger.audit.settled import Settlement
from ledger.audit.statement import Mismatch, Period, StatementDiff, StatementLine
from ledger.audit.verify import AnchorStatus, VerifyResult
from ledger.compose.reconcile import CheckResult, ReconcileReport
from ledger.scripts.connection import Connection, Handler, connect
from ledger.scripts.state import LogState
from projections.queries import DlqEntry, TotalRow
from projections.rows import JobRecord
from projections.stats import CurrencyBalance, QueueStats

__all__ = [
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
]
