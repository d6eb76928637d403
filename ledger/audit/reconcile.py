"""``reconcile``: run every reconciliation check over the log and collect one report.

Checks are plain callables ``(engine) -> CheckResult``, passed in by the caller.
Today the only check is the statement diff (``--statement``). The projection
replay-diff and the money-conservation check belong to the projections package;
they plug in through ``projection_checks`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from ledger.audit.settled import Settlement, completed_settlements
from ledger.audit.statement import StatementDiff, StatementLine, diff_statement
from ledger.settings import Settings
from ledger.store import EventStore


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One reconciliation check: its name, whether it agrees, and what differs."""

    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


ReconcileCheck = Callable[[Engine], CheckResult]


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Every check that ran; ``ok`` when all agree."""

    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"name": c.name, "ok": c.ok, "summary": c.summary, "details": c.details}
                for c in self.checks
            ],
        }


def projection_checks(settings: Settings) -> list[ReconcileCheck]:
    """INTEGRATION HOOK: the projections package's checks, built from settings.

    The integrator adds here (1) the replay of the log into scratch projections
    diffed against the live ones and (2) money conservation per currency
    (enqueued = completed + in flight + waiting + dead-lettered). Until then this
    returns no checks, and ``reconcile`` says which checks ran.
    """
    del settings
    return []


def read_settlements(engine: Engine) -> Iterable[Settlement]:
    """Completed settlements, folded from the whole log (streaming)."""
    return completed_settlements(EventStore(engine).read_all())


def statement_check(statement: Sequence[StatementLine]) -> ReconcileCheck:
    """The statement diff as a check."""

    def check(engine: Engine) -> CheckResult:
        diff = diff_statement(read_settlements(engine), statement)
        return CheckResult("statement", diff.ok, summarise(diff), diff.as_dict())

    return check


def summarise(diff: StatementDiff) -> str:
    """One line: counts of each kind of difference, or agreement."""
    if diff.ok:
        return (
            f"{diff.ledger_count} completed settlements match {diff.statement_count} "
            "statement lines"
        )
    parts = [
        (len(diff.missing_from_statement), "missing from the statement"),
        (len(diff.extra_in_statement), "extra in the statement"),
        (len(diff.mismatches), "amount/currency mismatches"),
        (len(diff.duplicates_in_statement), "duplicates in the statement"),
        (len(diff.duplicates_in_ledger), "duplicates in the ledger"),
    ]
    return ", ".join(f"{count} {what}" for count, what in parts if count)


def reconcile(engine: Engine, checks: Sequence[ReconcileCheck]) -> ReconcileReport:
    """Run ``checks`` in order and collect their results."""
    return ReconcileReport([check(engine) for check in checks])
