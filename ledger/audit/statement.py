"""The payment provider's statement, and its diff against the ledger's completed settlements.

Pure: parsing takes lines of text, the diff takes plain values. A statement is a
CSV file with the header ``idempotency_key,amount,currency,settled_at`` (columns
in any order; extra columns are ignored), amounts in minor units as integers.
A ``reference`` column (the provider's payout id) may stand beside or instead of
``idempotency_key``; a line is matched on its reference where the log recorded
one for the payout, on the idempotency key otherwise.

A statement covers a period (by default its own first to last ``settled_at``).
Payouts the log completed in the period and the statement lacks are missing;
payouts just outside it (within the tolerance) are reported as outside the
period, not as missing; payouts of other periods are not compared. Each matched
line's ``settled_at`` must lie within the tolerance of the log's completion.

Each difference is reported once: the first statement line of a payout is
compared with the ledger (extra, mismatch, settled-at); any further line of the
same payout is a duplicate and nothing else.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledger.audit.settled import Settlement
from ledger.errors import InvalidStatement
from ledger.events import format_time, to_utc
from ledger.money import minor_unit_exponent

STATEMENT_COLUMNS = ("idempotency_key", "amount", "currency", "settled_at")
#: the provider's payout id: optional, and enough without ``idempotency_key``
REFERENCE_COLUMN = "reference"
#: how far a statement's ``settled_at`` may be from the log's completion time by default
DEFAULT_TOLERANCE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of the provider's statement (``line`` is its 1-based line in the file)."""

    line: int
    idempotency_key: str
    amount: int
    currency: str
    settled_at: datetime
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """The instants a statement covers, both ends included (UTC)."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def near(self, moment: datetime, tolerance: timedelta) -> bool:
        """Outside the period, but within ``tolerance`` of one of its edges."""
        return not self.holds(moment) and (self.start - tolerance <= moment <= self.end + tolerance)


def statement_period(lines: Sequence[StatementLine]) -> Period | None:
    """The statement's own period: its first to its last ``settled_at`` (None when empty)."""
    if not lines:
        return None
    times = [line.settled_at for line in lines]
    return Period(min(times), max(times))


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
    required = [
        n for n in STATEMENT_COLUMNS if n != "idempotency_key" or REFERENCE_COLUMN not in header
    ]
    missing = [name for name in required if name not in header]
    if missing:
        raise InvalidStatement(
            f"the header lacks {', '.join(missing)} (want {','.join(STATEMENT_COLUMNS)}, "
            f"and optionally {REFERENCE_COLUMN})",
            line=1,
        )
    return {
        name: header.index(name)
        for name in (*STATEMENT_COLUMNS, REFERENCE_COLUMN)
        if name in header
    }


def _parse_line(line: int, cells: Sequence[str], index: dict[str, int]) -> StatementLine:
    if len(cells) <= max(index.values()):
        raise InvalidStatement(
            f"has {len(cells)} columns, the header has at least {max(index.values()) + 1}",
            line=line,
        )
    key, amount, currency, settled_at, reference = (
        cells[index[name]].strip() if name in index else ""
        for name in (*STATEMENT_COLUMNS, REFERENCE_COLUMN)
    )
    if not key and not reference:
        raise InvalidStatement(
            "idempotency_key is empty"
            + (" and so is reference" if REFERENCE_COLUMN in index else ""),
            line=line,
        )
    return StatementLine(
        line=line,
        idempotency_key=key,
        amount=_amount(amount, line),
        currency=_currency(currency, line),
        settled_at=_time(settled_at, line),
        reference=reference or None,
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
class SettledAtMismatch:
    """A matched payout whose statement ``settled_at`` is further than the tolerance."""

    settlement: Settlement
    line: StatementLine


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
    period: Period | None = None
    tolerance: timedelta = DEFAULT_TOLERANCE
    #: payouts the log completed just outside the period (within the tolerance): not missing
    outside_period: list[Settlement] = field(default_factory=list)
    settled_at_mismatches: list[SettledAtMismatch] = field(default_factory=list)
    #: payouts of other periods, not compared
    not_in_period: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.missing_from_statement
            or self.extra_in_statement
            or self.mismatches
            or self.duplicates_in_statement
            or self.duplicates_in_ledger
            or self.settled_at_mismatches
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): amounts stay integers with their currency."""
        period = self.period
        return {
            "ok": self.ok,
            "period": None
            if period is None
            else {"from": format_time(period.start), "to": format_time(period.end)},
            "toleranceSeconds": int(self.tolerance.total_seconds()),
            "missingFromStatement": [_settlement(s) for s in self.missing_from_statement],
            "extraInStatement": [_line(s) for s in self.extra_in_statement],
            "mismatches": [_mismatch(m) for m in self.mismatches],
            "settledAtMismatches": [
                {
                    **_settlement(m.settlement),
                    "line": m.line.line,
                    "settledAt": format_time(m.line.settled_at),
                }
                for m in self.settled_at_mismatches
            ],
            "duplicatesInStatement": [_line(s) for s in self.duplicates_in_statement],
            "duplicatesInLedger": [_settlement(s) for s in self.duplicates_in_ledger],
            "outsidePeriod": [_settlement(s) for s in self.outside_period],
            "notInPeriod": self.not_in_period,
            "totals": {"ledger": self.ledger_totals, "statement": self.statement_totals},
            "counts": {"ledger": self.ledger_count, "statement": self.statement_count},
        }


def diff_statement(
    settlements: Iterable[Settlement],
    statement: Iterable[StatementLine],
    *,
    period: Period | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> StatementDiff:
    """Compare completed settlements with statement lines (by reference, else key).

    ``period`` defaults to the statement's own first to last ``settled_at``; an
    empty statement with no period compares every settlement.
    """
    lines = list(statement)
    period = period if period is not None else statement_period(lines)
    index = _LedgerIndex()
    for paid in settlements:
        index.add(paid)
    matched: dict[str, StatementLine] = {}  # job id -> its first line
    extra: list[StatementLine] = []
    mismatches: list[Mismatch] = []
    late: list[SettledAtMismatch] = []
    duplicates: list[StatementLine] = []
    statement_totals: Counter[str] = Counter()
    for line in lines:
        statement_totals[line.currency] += line.amount
        settlement = index.find(line)
        if settlement is None:
            extra.append(line)
        elif settlement.job_id in matched:
            duplicates.append(line)
        else:
            matched[settlement.job_id] = line
            wrong = _mismatch_of(settlement, line)
            if wrong is not None:
                mismatches.append(wrong)
            if abs(line.settled_at - settlement.completed_at) > tolerance:
                late.append(SettledAtMismatch(settlement, line))
    missing, outside, in_period, elsewhere = _unmatched(
        index.settlements, index.duplicates, matched, period, tolerance
    )
    ledger_totals: Counter[str] = Counter()
    for settlement in in_period:
        ledger_totals[settlement.currency] += settlement.amount
    return StatementDiff(
        missing_from_statement=missing,
        extra_in_statement=extra,
        mismatches=mismatches,
        duplicates_in_statement=duplicates,
        duplicates_in_ledger=index.duplicates,
        ledger_totals=dict(sorted(ledger_totals.items())),
        statement_totals=dict(sorted(statement_totals.items())),
        ledger_count=len(in_period),
        statement_count=len(lines),
        period=period,
        tolerance=tolerance,
        outside_period=outside,
        settled_at_mismatches=late,
        not_in_period=elsewhere,
    )


@dataclass
class _LedgerIndex:
    """Settlements by idempotency key and by provider reference (first of each wins)."""

    settlements: list[Settlement] = field(default_factory=list)
    by_key: dict[str, Settlement] = field(default_factory=dict)
    by_reference: dict[str, Settlement] = field(default_factory=dict)
    duplicates: list[Settlement] = field(default_factory=list)

    def add(self, settlement: Settlement) -> None:
        self.settlements.append(settlement)
        if settlement.idempotency_key in self.by_key:
            self.duplicates.append(settlement)
            return
        self.by_key[settlement.idempotency_key] = settlement
        if settlement.reference is not None:
            self.by_reference.setdefault(settlement.reference, settlement)

    def find(self, line: StatementLine) -> Settlement | None:
        """The line's payout: by its reference where the log has that reference, else by key."""
        if line.reference is not None and line.reference in self.by_reference:
            return self.by_reference[line.reference]
        found = self.by_key.get(line.idempotency_key) if line.idempotency_key else None
        if found is not None and line.reference is not None and found.reference is not None:
            return None  # the log paid this key under another reference: not this line's payout
        return found


def _mismatch_of(settlement: Settlement, line: StatementLine) -> Mismatch | None:
    if (settlement.amount, settlement.currency) == (line.amount, line.currency):
        return None
    return Mismatch(
        idempotency_key=settlement.idempotency_key,
        job_id=settlement.job_id,
        ledger_amount=settlement.amount,
        ledger_currency=settlement.currency,
        statement_amount=line.amount,
        statement_currency=line.currency,
        line=line.line,
    )


def _unmatched(
    settlements: Sequence[Settlement],
    duplicates: Sequence[Settlement],
    matched: Mapping[str, StatementLine],
    period: Period | None,
    tolerance: timedelta,
) -> tuple[list[Settlement], list[Settlement], list[Settlement], int]:
    """(missing, outside the period at its edges, completed in the period, of other periods)."""
    missing: list[Settlement] = []
    outside: list[Settlement] = []
    in_period: list[Settlement] = []
    elsewhere = 0
    duplicated = {id(settlement) for settlement in duplicates}
    for settlement in settlements:
        inside = period is None or period.holds(settlement.completed_at)
        if inside:
            in_period.append(settlement)
        if settlement.job_id in matched or id(settlement) in duplicated:
            continue  # compared, or reported as a duplicate in the ledger
        if inside:
            missing.append(settlement)
        elif period is not None and period.near(settlement.completed_at, tolerance):
            outside.append(settlement)
        else:
            elsewhere += 1
    return missing, outside, in_period, elsewhere


def _settlement(s: Settlement) -> dict[str, Any]:
    return {
        "idempotencyKey": s.idempotency_key,
        "jobId": s.job_id,
        "reference": s.reference,
        "amount": s.amount,
        "currency": s.currency,
        "completedAt": format_time(s.completed_at),
    }


def _line(s: StatementLine) -> dict[str, Any]:
    return {
        "line": s.line,
        "idempotencyKey": s.idempotency_key,
        "reference": s.reference,
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
