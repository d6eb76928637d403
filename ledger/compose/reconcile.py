"""``reconcile``: run every reconciliation check over the log and collect one report.

Checks are plain callables ``(engine) -> CheckResult``, passed in by the caller.
The projection replay-diff and money conservation come from the projections
package (``projection_checks``); the statement diff runs with ``--statement``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from ledger.audit.settled import Settlement, completed_settlements
from ledger.audit.statement import (
    DEFAULT_TOLERANCE,
    Period,
    StatementDiff,
    StatementLine,
    diff_statement,
)
from ledger.events import format_time
from ledger.store import EventStore
from projections import as_of


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


def projection_checks() -> list[ReconcileCheck]:
    """The projections' checks: (1) a fresh fold against the live set, (2) conservation.

    Both read only: the log is folded in memory up to the live checkpoint
    (``projections.as_of.check``) and compared with the live tables read in one
    snapshot; nothing is caught up or written, so an auditor's read-only role
    (or a hot standby) runs them. The fold runs once and both checks read its
    report. Conservation is checked in the live tables and in the fresh fold:
    per currency, enqueued = completed + waiting + delayed + processing + failed
    (between attempts) + dead-lettered, in jobs and in money.
    """
    reports: dict[int, as_of.MemoryCheck] = {}

    def report(engine: Engine) -> as_of.MemoryCheck:
        key = id(engine)
        if key not in reports:
            reports[key] = as_of.check(EventStore(engine), datetime.now(UTC))
        return reports[key]

    def replay(engine: Engine) -> CheckResult:
        found = report(engine)
        ok = found.difference_count == 0
        behind = f"; they are {found.behind} events behind the log" if found.behind else ""
        summary = (
            f"live projections equal a fresh replay at position {found.position}{behind}"
            if ok
            else f"{found.difference_count} projection rows differ from a fresh replay"
        )
        details = {
            "position": found.position,
            "logHeadPosition": found.log_head,
            "behind": found.behind,
            "problems": found.problems(),
        }
        return CheckResult("projections", ok, summary, details)

    def conservation(engine: Engine) -> CheckResult:
        found = report(engine)
        balances = [*found.live, *found.replayed]
        unbalanced = [item.currency for item in balances if not item.balanced]
        summary = (
            f"money conserved in {len(found.live)} currencies (live and replayed)"
            if not unbalanced
            else f"money not conserved in {sorted(set(unbalanced))}"
        )
        details = {
            "live": [item.as_dict() for item in found.live],
            "replayed": [item.as_dict() for item in found.replayed],
        }
        return CheckResult("conservation", not unbalanced, summary, details)

    return [replay, conservation]


def read_settlements(engine: Engine) -> Iterable[Settlement]:
    """Completed settlements, folded from the whole log (streaming)."""
    return completed_settlements(EventStore(engine).read_all())


def statement_check(
    statement: Sequence[StatementLine],
    *,
    period: Period | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> ReconcileCheck:
    """The statement diff as a check (``period``: the statement's own span by default)."""

    def check(engine: Engine) -> CheckResult:
        diff = diff_statement(
            read_settlements(engine), statement, period=period, tolerance=tolerance
        )
        return CheckResult("statement", diff.ok, summarise(diff), diff.as_dict())

    return check


def summarise(diff: StatementDiff) -> str:
    """One line: counts of each kind of difference, or agreement."""
    period = diff.period
    span = "" if period is None else f" in {format_time(period.start)} .. {format_time(period.end)}"
    edges = (
        f"; {len(diff.outside_period)} just outside the period (not compared)"
        if diff.outside_period
        else ""
    )
    if diff.ok:
        return (
            f"{diff.statement_count} statement lines match the log's completed settlements "
            f"({diff.ledger_count} completed{span}){edges}"
        )
    parts = [
        (len(diff.missing_from_statement), "missing from the statement"),
        (len(diff.extra_in_statement), "extra in the statement"),
        (len(diff.mismatches), "amount/currency mismatches"),
        (len(diff.settled_at_mismatches), "settled_at further than the tolerance"),
        (len(diff.duplicates_in_statement), "duplicates in the statement"),
        (len(diff.duplicates_in_ledger), "duplicates in the ledger"),
    ]
    return ", ".join(f"{count} {what}" for count, what in parts if count) + span + edges


def reconcile(engine: Engine, checks: Sequence[ReconcileCheck]) -> ReconcileReport:
    """Run ``checks`` in order and collect their results."""
    return ReconcileReport([check(engine) for check in checks])
