"""Write audit events as CSV, JSON Lines or a table: streaming, one stable column order.

Amounts are integers in the currency's minor unit with the currency beside them;
``data`` is the event's stored canonical JSON, so an export round-trips the log.

CSV is byte-exact by default (scripts read it back); ``spreadsheet_safe``
neutralises cells a spreadsheet would run as a formula (OWASP's CSV injection
advice). JSON Lines escapes U+2028, U+2029 and U+0085, which many line readers
split on (the parsed value is unchanged). Tables escape non-printable text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from enum import StrEnum
from itertools import islice
from typing import TextIO

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger.audit.queries import COLUMNS, AuditEvent
from ledger.events import format_time
from ledger.money import format_amounts
from ledger.text import shown

#: rows per rendered table: a table is drawn a chunk at a time so memory stays flat
TABLE_CHUNK = 200


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    TABLE = "table"


#: a cell starting with one of these is a formula (or becomes one) in a spreadsheet
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: line breaks to some readers, plain characters to JSON: written as escapes
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def csv_row(event: AuditEvent) -> list[str]:
    """One CSV row in ``COLUMNS`` order (empty cell for a missing value)."""
    record = event.as_record()
    record["data"] = event.data_json
    return ["" if record[name] is None else str(record[name]) for name in COLUMNS]


def spreadsheet_cell(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def write_csv(events: Iterable[AuditEvent], out: TextIO, *, spreadsheet_safe: bool = False) -> int:
    """Header, then one row per event; returns the number of events written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for event in events:
        row = csv_row(event)
        writer.writerow([spreadsheet_cell(cell) for cell in row] if spreadsheet_safe else row)
        count += 1
    return count


def jsonl_line(record: object) -> str:
    """Compact JSON on one line, with U+2028, U+2029 and U+0085 escaped."""
    text = orjson.dumps(record).decode()
    # outside strings JSON has none of these, so escaping them keeps every value
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text


def write_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """One JSON object per line, keys in ``COLUMNS`` order; returns the count."""
    count = 0
    for event in events:
        out.write(jsonl_line(event.as_record()) + "\n")
        count += 1
    return count


def write_table(events: Iterable[AuditEvent], console: Console) -> int:
    """A readable table, drawn in chunks of ``TABLE_CHUNK`` rows; returns the count."""
    iterator = iter(events)
    count = 0
    while chunk := list(islice(iterator, TABLE_CHUNK)):
        table = Table(show_header=count == 0, box=None, pad_edge=False)
        for name in ("position", "time", "job", "v", "type", "actor", "user", "amount"):
            table.add_column(name, no_wrap=True, min_width=36 if name == "job" else None)
        for event in chunk:
            table.add_row(*(Text(shown(cell)) for cell in _table_cells(event)))
        console.print(table)
        count += len(chunk)
    return count


def _table_cells(event: AuditEvent) -> tuple[str, ...]:
    return (
        str(event.position),
        format_time(event.occurred_at),
        event.job_id,
        str(event.version),
        event.type,
        event.actor,
        event.user_id or "",
        _amount(event),
    )


def _amount(event: AuditEvent) -> str:
    """The amount as a person reads it (``1001 USD`` is ``10.01 USD``).

    CSV and JSON Lines keep integers in minor units, for machines.
    """
    if event.amount is None or event.currency is None:
        return ""
    return str(format_amounts({"amount": event.amount, "currency": event.currency})["amount"])


def write_events(
    events: Iterable[AuditEvent],
    fmt: ExportFormat,
    out: TextIO,
    console: Console | None = None,
    *,
    spreadsheet_safe: bool = False,
) -> int:
    """Write ``events`` in ``fmt`` (``console`` is used for tables)."""
    if fmt is ExportFormat.CSV:
        return write_csv(events, out, spreadsheet_safe=spreadsheet_safe)
    if fmt is ExportFormat.JSONL:
        return write_jsonl(events, out)
    return write_table(events, console or Console(file=out))
