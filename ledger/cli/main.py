"""Entry point of the ``ledger`` console script: registers every command module."""

from __future__ import annotations

import sys

import typer

# each module registers its commands on the app when imported
from ledger.cli import audit, demo, dlq, log, projections, serve, worker  # noqa: F401
from ledger.cli.app import app, err_console
from ledger.errors import LedgerError


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ``LedgerError`` is one line on stderr with its exit code."""
    try:
        app(args=argv, prog_name="ledger")
    except LedgerError as error:
        err_console.print(f"error: {error.message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except typer.Exit as done:  # raised when called with standalone_mode off
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
