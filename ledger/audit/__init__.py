"""Auditor trust: verify the chain, signed checkpoints, export, reconcile against a statement.

Modules: ``verify`` (the tamper-evidence walk), ``checkpoint`` (signed chain
heads), ``queries`` (filtered, paged event reads, shared with the HTTP API),
``export`` (CSV / JSON Lines / table), ``statement`` and ``settled`` (the
provider statement diff; the checks behind ``ledger reconcile`` are in ``ledger.compose``),
``roles`` (the PostgreSQL role script).
"""

from ledger.audit.queries import AuditEvent, EventFilters, fetch_events, iter_events
from ledger.audit.verify import Problem, ProblemKind, VerifyResult, verify_log

__all__ = [
    "AuditEvent",
    "EventFilters",
    "Problem",
    "ProblemKind",
    "VerifyResult",
    "fetch_events",
    "iter_events",
    "verify_log",
]
