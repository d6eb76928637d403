"""``ledger reconcile``: the log against the projections and against a provider's statement.

Thin: parse options, call ``ledger.compose.reconcile``, format. Needs only the
database (no Redis): it reads through ``audit_engine`` (the replica when
``LEDGER_AUDIT_DATABASE_URL`` names one), not the whole ledger.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer

from ledger.audit.statement import (
    DEFAULT_TOLERANCE,
    Period,
    StatementLine,
    parse_statement,
    statement_period,
)
from ledger.business_time import parse_moment
from ledger.cli.app import app, audit_engine, console, load_settings, print_json
from ledger.compose.reconcile import (
    CheckResult,
    ReconcileCheck,
    projection_checks,
    reconcile,
    statement_check,
)
from ledger.errors import InvalidRequest, InvalidStatement
from ledger.money import format_amounts
from ledger.settings import Settings
from ledger.store import translate_errors

# -- reconcile --------------------------------------------------------------------


@app.command(name="reconcile")
def reconcile_command(
    statement: Annotated[
        Path | None,
        typer.Option(
            help="Provider statement CSV: idempotency_key,amount,currency,settled_at (amounts "
            "in minor units); an optional reference column (the provider's payout id) is "
            "matched where the log recorded one."
        ),
    ] = None,
    period_from: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="With --statement: the period's first business day or instant (ISO 8601; "
            "default: the statement's first settled_at).",
        ),
    ] = None,
    period_to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="With --statement: the period's last business day (inclusive) or instant "
            "(default: the statement's last settled_at).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --statement: seconds a settled_at may be from the log's completion "
            "(and how far outside the period a payout is reported as at its edge).",
        ),
    ] = DEFAULT_TOLERANCE.total_seconds(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Reconcile: fold the log in memory and diff it with the live projections, check money
    conservation per currency, and (with --statement) diff the period's completed
    settlements against the provider's statement. Writes nothing.

    Days are business days (LEDGER_BUSINESS_TIMEZONE). Exit 0 when everything
    agrees, 1 otherwise.
    """
    settings = load_settings()
    if statement is None and (period_from is not None or period_to is not None):
        raise InvalidRequest("--from and --to give a statement's period: use them with --statement")
    checks: list[ReconcileCheck] = projection_checks()
    if statement is not None:
        lines = _read_statement(statement)
        period = _period(lines, period_from, period_to, settings)
        checks.append(statement_check(lines, period=period, tolerance=timedelta(seconds=tolerance)))
    with audit_engine(settings) as engine, translate_errors():
        report = reconcile(engine, checks)
    if as_json:
        print_json(report.as_dict())
    else:
        for check in report.checks:
            _print_check(check)
    if not report.ok:
        raise typer.Exit(1)


def _period(
    lines: list[StatementLine], start: str | None, end: str | None, settings: Settings
) -> Period | None:
    """The statement's period: --from/--to in business time, else the statement's own span."""
    own = statement_period(lines)
    if start is None and end is None:
        return own
    zone = settings.business_zone
    first = parse_moment(start, "--from", zone, end_of_day=False) if start else None
    last = parse_moment(end, "--to", zone, end_of_day=True) if end else None
    first = first or (own.start if own else None)
    last = last or (own.end if own else None)
    if first is None or last is None:
        raise InvalidRequest("the statement has no lines: give both --from and --to")
    if last < first:
        raise InvalidRequest("--to is before --from")
    return Period(first, last)


def _read_statement(path: Path) -> list[StatementLine]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return parse_statement(handle)
    except OSError as exc:
        raise InvalidStatement(f"cannot read statement {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidStatement(f"statement {str(path)!r} is not UTF-8 text") from None


def _print_check(check: CheckResult) -> None:
    state = "ok" if check.ok else "DIFFERS"
    console.print(f"{check.name}: {state} — {check.summary}", markup=False, highlight=False)
    for section, items in check.details.items():
        if section in ("live", "replayed") and isinstance(items, list):
            for item in items:
                console.print(f"  {section}: {_balance_text(item)}", markup=False, highlight=False)
        elif isinstance(items, list):
            for item in items:
                text = orjson.dumps(format_amounts(item)).decode()
                console.print(f"  {section}: {text}", markup=False, highlight=False, soft_wrap=True)
        elif section == "totals":
            for side, totals in items.items():
                line = ", ".join(
                    format_amounts({"amount": amount, "currency": currency})["amount"]
                    for currency, amount in totals.items()
                )
                console.print(f"  total {side}: {line or 'none'}", markup=False, highlight=False)


def _balance_text(item: dict[str, object]) -> str:
    """One currency's conservation, amounts formatted by the currency's exponent."""
    currency = str(item["currency"])
    parts = [
        f"{name} {format_amounts({'amount': value, 'currency': currency})['amount']}"
        for name, value in item.items()
        if name not in ("currency", "jobsDifference", "balanced") and isinstance(value, int)
    ]
    state = "balanced" if item.get("balanced") else "NOT balanced"
    return f"{currency} {state}: " + "; ".join(parts)
