"""``ledger dlq …``: the dead-letter queue (list it, requeue from it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ledger.cli.app import app, console, print_json
from ledger.cli.projections import open_store, parse_time
from ledger.events import format_time
from ledger.money import format_amount
from ledger.text import shown
from projections import as_of as in_memory
from projections import queries
from projections.reads import ReadModels

dlq_app = typer.Typer(
    help="The dead-letter queue: list dead-lettered jobs, requeue them.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def list_dead_lettered(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the object of GET /api/queue/failed.")
    ] = False,
    start: Annotated[int, typer.Option(min=0, help="First index (0 = newest).")] = 0,
    end: Annotated[
        int, typer.Option(min=-1, help="Last index, inclusive (-1 = to the oldest).")
    ] = 49,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="The DLQ as it stood at this ISO 8601 time: the log up to its last event at "
            "or before it, folded in memory (writes nothing).",
        ),
    ] = None,
) -> None:
    """Dead-lettered jobs, newest first, with why they failed."""
    moment = parse_time(as_of, "--as-of") if as_of else None
    with open_store() as store:
        if moment is not None:
            page = in_memory.dlq_as_of(store, moment, start, end)
        else:
            page = ReadModels(store).dlq_page(start, end)
    if as_json:
        print_json(page.as_api())
        return
    print_dlq(page)


def print_dlq(page: queries.DlqPage) -> None:
    """The page as a table: job, when, amount, user, attempts, why."""
    title = f"dead-lettered jobs {page.start}..{page.end} of {page.count} (newest first)"
    if page.position is not None:
        title += f", log position {page.position}"
    table = Table(title=title)
    for column in ("job", "dead-lettered", "amount", "user", "attempts", "failed reason"):
        table.add_column(column)
    for entry in page.jobs:
        cells = (
            entry.job_id,
            format_time(entry.dead_lettered_at),
            format_amount(int(entry.request["amount"]), str(entry.request["currency"])),
            str(entry.request["user_id"]),
            str(entry.attempts),
            entry.failed_reason or "",
        )
        table.add_row(*(Text(shown(cell)) for cell in cells))
    console.print(table)
