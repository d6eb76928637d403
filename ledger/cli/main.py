"""Entry point of the ``ledger`` console script: registers every command module."""

from __future__ import annotations

import sys

import click
import typer

# each module registers its commands on the app when imported
from ledger.cli import audit, demo, dlq, log, projections, serve, worker  # noqa: F401
from ledger.cli.app import app, report_error, wants_json
from ledger.errors import LedgerError


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ``LedgerError`` is one line on stderr with its exit code.

    With ``--json`` (or ``--format json``/``jsonl``) every error, a usage error
    included, is also a JSON object on stdout: JSON mode is JSON on every path.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        if not wants_json(args):
            app(args=argv, prog_name="ledger")
            return
        code = app(args=args, prog_name="ledger", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except LedgerError as error:
        report_error(error.message, error.exit_code)
        sys.exit(error.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        report_error("aborted", 1)
        sys.exit(1)
    except (click.ClickException, typer.TyperException) as error:
        # typer >= 0.20 carries its own copy of click: its usage errors are TyperExceptions
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        code = int(getattr(error, "exit_code", 2))
        report_error(str(message), code)
        sys.exit(code)
    except typer.Exit as done:  # raised when called with standalone_mode off
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
