"""The payment provider's statement, and its diff against the ledger's completed settlements.

Pure: parsing takes lines of text, the diff takes plain values. A statement is a
CSV file with the header ``idempotency_key,amount,currency,settled_at`` (columns
in any order; extra columns are ignored), amounts in minor units as integers.

Each difference is reported once: the first statement line of a key is compared
with the ledger (missing, extra, mismatch); any further line of the same key is a
duplicate and nothing else.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.audit.settled import Settlement
from ledger.errors import InvalidStatement
from ledger.events import format_time, to_utc
from ledger.money import minor_unit_exponent

STATEMENT_COLUMNS = ("idempotency_key", "amount", "currency", "settled_at")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of the provider's statement (``line`` is its 1-based line in the file)."""

    line: int
    idempotency_key: str
    amount: int
    currency: str
    settled_at: datetime


def parse_statement(lines: Iterable[str]) -> list[StatementLine]:
    """Parse statement lines (as read from the file), or ``InvalidStatement`` naming the line."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidStatement("the statement is empty (want a header line)", line=1)
        index = _header_index([cell.strip().lstrip("\ufeff") for cell in header])
        parsed: list[StatementLine] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            parsed.append(_parse_line(reader.line_num, cells, index))
    except csv.Error as exc:
        raise InvalidStatement(f"not valid CSV ({exc})", line=reader.line_num) from None
    return parsed


def _header_index(header: Sequence[str]) -> dict[str, int]:
    missing = [name for name in STATEMENT_COLUMNS if name not in header]
    if missing:
        raise InvalidStatement(
            f"the header lacks {', '.join(missing)} (want {','.join(STATEMENT_COLUMNS)})",
            line=1,
        )
    return {name: header.index(name) for name in STATEMENT_COLUMNS}


def _parse_line(line: int, cells: Sequence[str], index: dict[str, int]) -> StatementLine:
    if len(cells) <= max(index.values()):
        raise InvalidStatement(
            f"has {len(cells)} columns, the header has at least {max(index.values()) + 1}",
            line=line,
        )
    key, amount, currency, settled_at = (cells[index[name]].strip() for name in STATEMENT_COLUMNS)
    if not key:
        raise InvalidStatement("idempotency_key is empty", line=line)
    return StatementLine(
        line=line,
        idempotency_key=key,
        amount=_amount(amount, line),
        currency=_currency(currency, line),
        settled_at=_time(settled_at, line),
    )


def _amount(text: str, line: int) -> int:
    digits = text.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidStatement(
            f"amount {text!r} is not a whole number of minor units (no decimals, no signs "
            "other than '-')",
            line=line,
        )
    return int(text)


def _currency(text: str, line: int) -> str:
    try:
        minor_unit_exponent(text)
    except ValueError as exc:
        raise InvalidStatement(f"invalid currency: {exc}", line=line) from None
    return text


def _time(text: str, line: int) -> datetime:
    try:
        return to_utc(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidStatement(f"settled_at {text!r} is not an ISO 8601 time", line=line) from None


# -- the diff -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A key on both sides with a different amount or currency."""

    idempotency_key: str
    job_id: str
    ledger_amount: int
    ledger_currency: str
    statement_amount: int
    statement_currency: str
    line: int


@dataclass(frozen=True, slots=True)
class StatementDiff:
    """Every difference between the ledger's completed settlements and the statement."""

    missing_from_statement: list[Settlement]
    extra_in_statement: list[StatementLine]
    mismatches: list[Mismatch]
    duplicates_in_statement: list[StatementLine]
    duplicates_in_ledger: list[Settlement]
    ledger_totals: dict[str, int]
    statement_totals: dict[str, int]
    ledger_count: int
    statement_count: int

    @property
    def ok(self) -> bool:
        return not (
            self.missing_from_statement
            or self.extra_in_statement
            or self.mismatches
            or self.duplicates_in_statement
            or self.duplicates_in_ledger
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): amounts stay integers with their currency."""
        return {
            "ok": self.ok,
            "missingFromStatement": [_settlement(s) for s in self.missing_from_statement],
            "extraInStatement": [_line(s) for s in self.extra_in_statement],
            "mismatches": [_mismatch(m) for m in self.mismatches],
            "duplicatesInStatement": [_line(s) for s in self.duplicates_in_statement],
            "duplicatesInLedger": [_settlement(s) for s in self.duplicates_in_ledger],
            "totals": {"ledger": self.ledger_totals, "statement": self.statement_totals},
            "counts": {"ledger": self.ledger_count, "statement": self.statement_count},
        }


def diff_statement(
    settlements: Iterable[Settlement], statement: Iterable[StatementLine]
) -> StatementDiff:
    """Compare completed settlements with statement lines by idempotency key."""
    ledger_by_key: dict[str, Settlement] = {}
    duplicates_in_ledger: list[Settlement] = []
    ledger_totals: Counter[str] = Counter()
    for settlement in settlements:
        ledger_totals[settlement.currency] += settlement.amount
        if settlement.idempotency_key in ledger_by_key:
            duplicates_in_ledger.append(settlement)
        else:
            ledger_by_key[settlement.idempotency_key] = settlement
    lines_by_key: defaultdict[str, list[StatementLine]] = defaultdict(list)
    statement_totals: Counter[str] = Counter()
    for line in statement:
        statement_totals[line.currency] += line.amount
        lines_by_key[line.idempotency_key].append(line)
    extra, mismatches, duplicates = _compare(ledger_by_key, lines_by_key)
    return StatementDiff(
        missing_from_statement=[s for k, s in ledger_by_key.items() if k not in lines_by_key],
        extra_in_statement=extra,
        mismatches=mismatches,
        duplicates_in_statement=duplicates,
        duplicates_in_ledger=duplicates_in_ledger,
        ledger_totals=dict(sorted(ledger_totals.items())),
        statement_totals=dict(sorted(statement_totals.items())),
        ledger_count=len(ledger_by_key) + len(duplicates_in_ledger),
        statement_count=sum(len(lines) for lines in lines_by_key.values()),
    )


def _compare(
    ledger_by_key: dict[str, Settlement], lines_by_key: dict[str, list[StatementLine]]
) -> tuple[list[StatementLine], list[Mismatch], list[StatementLine]]:
    extra: list[StatementLine] = []
    mismatches: list[Mismatch] = []
    duplicates: list[StatementLine] = []
    for key, (first, *more) in lines_by_key.items():
        duplicates.extend(more)
        settlement = ledger_by_key.get(key)
        if settlement is None:
            extra.append(first)
        elif (settlement.amount, settlement.currency) != (first.amount, first.currency):
            mismatches.append(
                Mismatch(
                    idempotency_key=key,
                    job_id=settlement.job_id,
                    ledger_amount=settlement.amount,
                    ledger_currency=settlement.currency,
                    statement_amount=first.amount,
                    statement_currency=first.currency,
                    line=first.line,
                )
            )
    return extra, mismatches, duplicates


def _settlement(s: Settlement) -> dict[str, Any]:
    return {
        "idempotencyKey": s.idempotency_key,
        "jobId": s.job_id,
        "amount": s.amount,
        "currency": s.currency,
        "completedAt": format_time(s.completed_at),
    }


def _line(s: StatementLine) -> dict[str, Any]:
    return {
        "line": s.line,
        "idempotencyKey": s.idempotency_key,
        "amount": s.amount,
        "currency": s.currency,
        "settledAt": format_time(s.settled_at),
    }


def _mismatch(m: Mismatch) -> dict[str, Any]:
    return {
        "idempotencyKey": m.idempotency_key,
        "jobId": m.job_id,
        "line": m.line,
        "ledger": {"amount": m.ledger_amount, "currency": m.ledger_currency},
        "statement": {"amount": m.statement_amount, "currency": m.statement_currency},
    }
