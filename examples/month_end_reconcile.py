"""Month-end reconciliation: a provider's statement CSV in, a CSV of differences out.

    python examples/month_end_reconcile.py --statement march.csv --month 2026-03 \\
        --out differences.csv [--log URL]

The statement has the columns ``idempotency_key,amount,currency,settled_at``
(amounts in minor units; an optional ``reference``: the provider's payout id).
The month is a business month (``LEDGER_BUSINESS_TIMEZONE``, e.g. Asia/Seoul);
without ``--month`` the period is the statement's own first to last line.

Each difference is one row (``kind``: missing_from_statement,
extra_in_statement, amount_mismatch, settled_at_mismatch,
duplicate_in_statement, duplicate_in_ledger), then one ``total`` row per
currency: what the ledger settled in the period, what the statement lists,
and the difference. Amounts stay integers in minor units. Exit 0 when the
statement agrees, 1 when it does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from ledger import LedgerError
from ledger.scripts import Settlement, StatementDiff, StatementLine, connect

DESCRIPTION = "Diff a provider's statement CSV against the ledger for a month."
COLUMNS = (
    "kind",
    "currency",
    "idempotency_key",
    "job_id",
    "line",
    "ledger_amount",
    "statement_amount",
    "difference",
    "ledger_completed_at",
    "statement_settled_at",
)
Row = dict[str, object]


def month_bounds(text: str) -> tuple[date, date]:
    """``2026-03`` as its first and last day (``ValueError`` for anything else)."""
    first = datetime.strptime(text, "%Y-%m").date()
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


def _settlement(kind: str, paid: Settlement) -> Row:
    return {
        "kind": kind,
        "currency": paid.currency,
        "idempotency_key": paid.idempotency_key,
        "job_id": paid.job_id,
        "ledger_amount": paid.amount,
        "statement_amount": 0,
        "difference": paid.amount,
        "ledger_completed_at": paid.completed_at.isoformat(),
    }


def _line(kind: str, line: StatementLine) -> Row:
    return {
        "kind": kind,
        "currency": line.currency,
        "idempotency_key": line.idempotency_key,
        "line": line.line,
        "ledger_amount": 0,
        "statement_amount": line.amount,
        "difference": -line.amount,
        "statement_settled_at": line.settled_at.isoformat(),
    }


def difference_rows(diff: StatementDiff) -> Iterator[Row]:
    """Every difference, then the totals per currency (ledger - statement)."""
    yield from (_settlement("missing_from_statement", s) for s in diff.missing_from_statement)
    yield from (_line("extra_in_statement", line) for line in diff.extra_in_statement)
    for wrong in diff.mismatches:
        yield {
            "kind": "amount_mismatch",
            "currency": wrong.ledger_currency
            if wrong.ledger_currency == wrong.statement_currency
            else f"{wrong.ledger_currency}/{wrong.statement_currency}",
            "idempotency_key": wrong.idempotency_key,
            "job_id": wrong.job_id,
            "line": wrong.line,
            "ledger_amount": wrong.ledger_amount,
            "statement_amount": wrong.statement_amount,
            "difference": wrong.ledger_amount - wrong.statement_amount,
        }
    for late in diff.settled_at_mismatches:
        row = _settlement("settled_at_mismatch", late.settlement)
        row.update(
            line=late.line.line,
            statement_amount=late.line.amount,
            difference=late.settlement.amount - late.line.amount,
            statement_settled_at=late.line.settled_at.isoformat(),
        )
        yield row
    yield from (_line("duplicate_in_statement", line) for line in diff.duplicates_in_statement)
    yield from (_settlement("duplicate_in_ledger", s) for s in diff.duplicates_in_ledger)
    for currency in sorted({*diff.ledger_totals, *diff.statement_totals}):
        ledger, statement = (
            diff.ledger_totals.get(currency, 0),
            diff.statement_totals.get(currency, 0),
        )
        yield {
            "kind": "total",
            "currency": currency,
            "ledger_amount": ledger,
            "statement_amount": statement,
            "difference": ledger - statement,
        }


def write_differences(diff: StatementDiff, out: Path) -> int:
    """The CSV of differences; returns how many differences (totals not counted)."""
    count = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in difference_rows(diff):
            writer.writerow(row)
            count += row["kind"] != "total"
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--statement", type=Path, required=True, help="The provider's CSV.")
    parser.add_argument("--out", type=Path, required=True, help="Where to write the differences.")
    parser.add_argument("--month", help="Business month YYYY-MM (default: the statement's span).")
    parser.add_argument("--log", help="The ledger's database URL (default LEDGER_DATABASE_URL).")
    args = parser.parse_args(argv)
    start: date | None = None
    end: date | None = None
    if args.month:
        try:
            start, end = month_bounds(args.month)
        except ValueError:
            parser.error(f"--month: {args.month!r} is not a month like 2026-03")
    try:
        with connect(args.log) as log:
            diff = log.statement_diff(args.statement, start=start, end=end)
    except LedgerError as error:
        print(f"month-end reconcile: {error.message}", file=sys.stderr)
        return 2
    count = write_differences(diff, args.out)
    totals = "; ".join(
        f"{currency} ledger {diff.ledger_totals.get(currency, 0)} statement "
        f"{diff.statement_totals.get(currency, 0)}"
        for currency in sorted({*diff.ledger_totals, *diff.statement_totals})
    )
    print(f"{count} difference(s) written to {args.out}; {totals or 'nothing settled'}")
    return 0 if diff.ok else 1


if __name__ == "__main__":
    sys.exit(main())
