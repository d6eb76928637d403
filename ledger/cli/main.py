"""Entry point of the ``ledger`` console script: registers the command modules it needs.

Each module of ``ledger.cli`` registers its commands on the app when imported.
Importing all of them costs about 0.75 s here (the HTTP server, Alembic, the
audit tools), most of a worker's start-up; so ``main`` imports only the module
of the command named on the line (``COMMANDS``), and every module for help,
completion or a name it does not know.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import click
import typer

import ledger.cli
from ledger.cli.app import app, report_error, wants_json
from ledger.errors import LedgerError

#: the modules that register each command (``dlq``'s group gets commands from two)
COMMANDS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("audit",),
    "demo": ("demo",),
    "dlq": ("dlq", "worker"),
    "enqueue": ("log",),
    "events": ("audit",),
    "history": ("projections",),
    "cancel": ("settle",),
    "refund": ("settle",),
    "repay": ("settle",),
    "reverse": ("settle",),
    "init": ("init",),
    "bulk": ("operate",),
    "limits": ("operate",),
    "pause": ("operate",),
    "resume": ("operate",),
    "project": ("projections",),
    "reconcile": ("reconcile",),
    "recover": ("worker",),
    "replay": ("projections",),
    "roles": ("audit",),
    "serve": ("serve",),
    "stats": ("projections",),
    "verify": ("audit",),
    "worker": ("worker",),
}


def command_modules() -> list[str]:
    """Every command module of ``ledger.cli``, in name order (the order of ``--help``)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(ledger.cli.__path__)
        if info.name not in ("app", "main")
    )


def register(args: Sequence[str]) -> None:
    """Import the modules of the command ``args`` name (all of them when unsure)."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    modules = COMMANDS.get(name or "") or command_modules()
    for module in modules:
        importlib.import_module(f"ledger.cli.{module}")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ``LedgerError`` is one line on stderr with its exit code.

    With ``--json`` (or ``--format json``/``jsonl``) every error, a usage error
    included, is also a JSON object on stdout: JSON mode is JSON on every path.
    """
    args = sys.argv[1:] if argv is None else argv
    register(args)
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
