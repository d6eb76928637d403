"""The Typer application every command module registers on, and shared CLI helpers."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from sqlalchemy.engine import Engine, make_url

from ledger.db import create_engine
from ledger.replica import replica_lag
from ledger.settings import Settings

app = typer.Typer(
    name="ledger",
    help="The settlement ledger: an event-sourced, auditable job ledger for money payouts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    # a group even when one command is registered: ``ledger.cli.main`` imports only the
    # named command's module, and Typer runs a lone command without its name
    pass


console = Console()
err_console = Console(stderr=True)


@contextmanager
def audit_engine(settings: Settings) -> Iterator[Engine]:
    """The engine auditors read from: ``LEDGER_AUDIT_DATABASE_URL`` (a streaming replica),
    else the log itself. After the read, a replica's lag goes to stderr (stdout stays clean).
    """
    engine = create_engine(settings.audit_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        yield engine
        if settings.audit_database_url is not None:
            report_lag(engine, settings)
    finally:
        engine.dispose()


def report_lag(replica: Engine, settings: Settings) -> None:
    """One stderr line: how far the replica that answered is behind the primary."""
    primary = create_engine(settings.database_url)
    try:
        lag = replica_lag(replica, primary)
    finally:
        primary.dispose()
    line = "read from LEDGER_AUDIT_DATABASE_URL (not a standby)" if lag is None else lag.describe()
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)


def load_settings() -> Settings:
    """Settings from the environment; a bad LEDGER_* value is one clear line, exit 2."""
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError, shown without a traceback
        fail(f"bad configuration: {exc}".splitlines()[0] + f" ({_first_error(exc)})", code=2)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"LEDGER_{str(first['loc'][0]).upper()}: {first['msg']}"
    return str(exc)


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def print_json(value: Any) -> None:
    """Compact JSON on stdout, one line (what scripts parse)."""
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON output: then errors are JSON too."""
    if "--json" in argv or any(a in ("--format=json", "--format=jsonl") for a in argv):
        return True
    return any(a == "--format" and b in ("json", "jsonl") for a, b in itertools.pairwise(argv))


def report_error(message: str, code: int) -> None:
    """One line on stderr; in JSON mode also ``{"ok": false, "error": …}`` on stdout."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    if wants_json(sys.argv[1:]):
        print_json({"ok": False, "error": {"message": message, "exitCode": code}})


def fail(message: str, *, code: int = 1) -> NoReturn:
    """One line on stderr (and JSON on stdout in JSON mode), exit ``code``; never a traceback."""
    report_error(message, code)
    raise typer.Exit(code)
