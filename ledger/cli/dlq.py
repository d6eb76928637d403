"""``ledger dlq …``: the dead-letter queue (list it, requeue from it)."""

from __future__ import annotations

import typer

from ledger.cli.app import app

dlq_app = typer.Typer(
    help="The dead-letter queue: list dead-lettered jobs, requeue them.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
