"""Auditor commands: ``verify``, ``checkpoint``, ``events``, ``roles`` (and ``reconcile``,
in ``ledger.cli.reconcile``).

Thin: parse options, call ``ledger.audit``, format. These need only the database
(no Redis), so they build an engine from settings rather than the whole ledger.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import Engine

from ledger.audit import checkpoint as checkpoints
from ledger.audit import parallel
from ledger.audit.export import ExportFormat, write_events
from ledger.audit.queries import EventFilters, iter_events
from ledger.audit.roles import (
    DEFAULT_APP,
    DEFAULT_AUDITOR,
    DEFAULT_OWNER,
    DEFAULT_SCHEMA,
    roles_sql,
)
from ledger.audit.verify import DEFAULT_MAX_FINDINGS, AnchorStatus, VerifyResult, verify_log
from ledger.cli.app import (
    app,
    audit_engine,
    console,
    err_console,
    load_settings,
    print_json,
)
from ledger.db import create_engine
from ledger.errors import InvalidRequest
from ledger.events import EventType, to_utc
from ledger.request import MAX_ID_LENGTH
from ledger.settings import Settings
from ledger.store import EventStore, translate_errors
from ledger.text import check_text


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    """The primary (for ``roles``, which writes); auditors' reads use ``audit_engine``."""
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        yield engine
    finally:
        engine.dispose()


def _key(settings: Settings) -> bytes:
    secret = settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None
    return checkpoints.checkpoint_key(secret)


# -- verify -----------------------------------------------------------------------


@app.command()
def verify(
    from_position: Annotated[
        int, typer.Option(min=1, help="Start here; the events before it are trusted.")
    ] = 1,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A signed checkpoint file: the log must still hold that exact prefix."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Processes checking ranges of the log in parallel "
            f"[default: one per CPU core, at most {parallel.MAX_DEFAULT_WORKERS}].",
        ),
    ] = None,
    max_findings: Annotated[
        int, typer.Option(min=1, help="Stop after this many findings (first one first).")
    ] = DEFAULT_MAX_FINDINGS,
) -> None:
    """Check the whole log: every hash and link, event times, every job's versions and lifecycle.

    Exit 0 with a one-line summary; exit 1 listing every finding (up to
    --max-findings, the first bad position first), or when nothing was checked.
    """
    settings = load_settings()
    anchors: dict[int, str] = {}
    if checkpoint is not None:
        anchors = checkpoints.anchors(checkpoints.read_checkpoint(checkpoint, _key(settings)))
    with audit_engine(settings) as engine:
        total = EventStore(engine).head().position
        with _progress("verifying") as progress:
            task = progress.add_task("verify", total=max(total - from_position + 1, 0))
            result = verify_log(
                engine,
                from_position=from_position,
                anchors=anchors,
                on_progress=lambda position: progress.update(
                    task, completed=position - from_position + 1
                ),
                workers=parallel.default_workers() if workers is None else workers,
                max_findings=max_findings,
            )
    if as_json:
        print_json(_verify_record(result, max_findings))
    else:
        for line in _verify_lines(result, max_findings):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


def _progress(description: str) -> Progress:
    """A progress bar on stderr, only when stderr is a terminal (stdout stays clean)."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def _verify_lines(result: VerifyResult, max_findings: int) -> list[str]:
    """The verdict first (one line when the log is intact), then one line per finding."""
    if result.nothing_checked:
        return [f"NOTHING CHECKED: {_nothing_why(result)}; that is not a pass"]
    anchors = "".join(f"; {_anchor_text(p, s, result)}" for p, s in result.anchors.items())
    if result.ok:
        return [
            f"ok: {result.checked} events checked (from position {result.from_position}), "
            f"head position {result.last_position} hash {result.head_hash}{anchors}"
        ]
    first, *others = result.findings
    lines = [f"FAILED at position {first.position}: {first.kind} — {first.detail}"]
    lines.extend(f"  also at position {p.position}: {p.kind} — {p.detail}" for p in others)
    more = f" (stopped at --max-findings {max_findings}; there may be more)"
    lines.append(
        f"{len(result.findings)} finding(s) in {result.checked} events checked"
        f"{more if result.truncated else ''}{anchors}"
    )
    return lines


def _nothing_why(result: VerifyResult) -> str:
    if result.log_head == 0:
        return "the log is empty"
    return (
        f"--from-position {result.from_position} is past the log's head "
        f"(position {result.log_head})"
    )


def _anchor_text(position: int, status: AnchorStatus, result: VerifyResult) -> str:
    if status is AnchorStatus.MATCHED:
        trusted = (
            ""
            if result.from_position == 1
            else f"; events before position {result.from_position} were trusted, not checked"
        )
        return (
            f"checkpoint at position {position} matches (chain recomputed from position "
            f"{result.from_position}{trusted})"
        )
    if status is AnchorStatus.NOT_CHECKED and position < result.from_position:
        return (
            f"checkpoint at position {position} not checked: it is before --from-position "
            f"{result.from_position} (walk from position 1 to check it)"
        )
    return f"checkpoint at position {position}: {status}"


def _verify_record(result: VerifyResult, max_findings: int) -> dict[str, object]:
    """The JSON report: every field agrees with ``ok`` and ``verdict``."""
    findings = [
        {"kind": str(p.kind), "position": p.position, "detail": p.detail} for p in result.findings
    ]
    verdict = "ok" if result.ok else "nothing checked" if result.nothing_checked else "failed"
    return {
        "ok": result.ok,
        "verdict": verdict,
        "checked": result.checked,
        "fromPosition": result.from_position,
        "logHeadPosition": result.log_head,
        "headPosition": result.last_position,
        "headHash": result.head_hash,
        "checkpoints": [
            {
                "position": position,
                "status": str(status),
                "recomputedFrom": result.from_position if status is AnchorStatus.MATCHED else None,
            }
            for position, status in result.anchors.items()
        ],
        "findings": findings,
        "maxFindings": max_findings,
        "truncated": result.truncated,
        "problem": findings[0] if findings else None,
    }


# -- checkpoint -------------------------------------------------------------------


@app.command()
def checkpoint(
    output: Annotated[
        Path | None, typer.Option(help="Write the checkpoint here (default: stdout).")
    ] = None,
) -> None:
    """Sign the current chain head (position, hash, time) with LEDGER_CHECKPOINT_KEY.

    Keep the file where the database's operators cannot change it.
    """
    settings = load_settings()
    key = _key(settings)
    with audit_engine(settings) as engine:
        head = checkpoints.take_checkpoint(engine, datetime.now(UTC))
    text = checkpoints.dumps(checkpoints.sign(head, key))
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    err_console.print(f"checkpoint at position {head.position} written to {output}", markup=False)


# -- events -----------------------------------------------------------------------


@app.command()
def events(
    after: Annotated[int, typer.Option(min=0, help="Only events after this position.")] = 0,
    user_id: Annotated[str | None, typer.Option(help="Only jobs of this user.")] = None,
    place_id: Annotated[str | None, typer.Option(help="Only jobs at this place.")] = None,
    mission_id: Annotated[str | None, typer.Option(help="Only jobs of this mission.")] = None,
    from_time: Annotated[
        str | None, typer.Option("--from", help="From this time, inclusive (ISO 8601, UTC).")
    ] = None,
    to_time: Annotated[
        str | None, typer.Option("--to", help="Up to this time, exclusive (ISO 8601, UTC).")
    ] = None,
    event_type: Annotated[
        list[EventType] | None, typer.Option("--type", help="Only this event type (repeatable).")
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.TABLE
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many events.")] = None,
    spreadsheet_safe: Annotated[
        bool,
        typer.Option(
            "--spreadsheet-safe",
            help="CSV only: prefix ' to every cell that starts with =, +, -, @, tab or CR, so "
            "a spreadsheet shows it as text instead of running it as a formula. Use it for a "
            "file a person opens in Excel, LibreOffice or Google Sheets; leave it off for "
            "files that scripts read back (the default output is byte-exact).",
        ),
    ] = False,
) -> None:
    """Export events for auditors (streaming; stable columns; amounts in minor units)."""
    if spreadsheet_safe and fmt is not ExportFormat.CSV:
        raise InvalidRequest("--spreadsheet-safe applies to --format csv only")
    settings = load_settings()
    filters = EventFilters(
        user_id=_identifier(user_id, "--user-id"),
        place_id=_identifier(place_id, "--place-id"),
        mission_id=_identifier(mission_id, "--mission-id"),
        from_time=_parse_time(from_time, "--from"),
        to_time=_parse_time(to_time, "--to"),
        types=tuple(event_type or ()),
    )
    with audit_engine(settings) as engine:
        rows = iter_events(engine, filters, after=after, limit=limit)
        try:
            # piped tables are not cut to 80 columns
            table_console = console if console.is_terminal else Console(width=200)
            write_events(rows, fmt, sys.stdout, table_console, spreadsheet_safe=spreadsheet_safe)
            sys.stdout.flush()
        except BrokenPipeError:  # `ledger events … | head` is fine
            sys.stderr.close()
            raise typer.Exit(0) from None


def _identifier(text: str | None, option: str) -> str | None:
    return None if text is None else check_text(text, option, max_length=MAX_ID_LENGTH)


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return to_utc(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidRequest(f"invalid {option}: {text!r} is not an ISO 8601 time") from None


# -- roles ------------------------------------------------------------------------


@app.command()
def roles(
    print_sql: Annotated[
        bool, typer.Option("--print-sql", help="Print the SQL (run it with psql as a superuser).")
    ] = False,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Run it against LEDGER_DATABASE_URL (as a superuser)."),
    ] = False,
    owner_role: Annotated[str, typer.Option(help="Role that owns the tables.")] = DEFAULT_OWNER,
    app_role: Annotated[str, typer.Option(help="Role the application logs in as.")] = DEFAULT_APP,
    auditor_role: Annotated[
        str, typer.Option(help="Read-only role auditors log in as (SELECT only).")
    ] = DEFAULT_AUDITOR,
    schema: Annotated[str, typer.Option(help="Schema of the ledger's tables.")] = DEFAULT_SCHEMA,
) -> None:
    """PostgreSQL roles: an owner, an app role with only SELECT+INSERT on events, and an
    auditor role with SELECT only (every auditor command runs as it, also on a standby)."""
    if print_sql == apply:
        raise InvalidRequest("pass exactly one of --print-sql or --apply")
    sql = roles_sql(owner=owner_role, app=app_role, auditor=auditor_role, schema=schema)
    if print_sql:
        sys.stdout.write(sql)
        return
    settings = load_settings()
    with _engine(settings) as engine:
        if engine.dialect.name != "postgresql":
            raise InvalidRequest("roles apply to PostgreSQL only; LEDGER_DATABASE_URL is not")
        with translate_errors(), engine.begin() as conn:
            conn.exec_driver_sql(sql)
    console.print(
        f"roles ready: owner {owner_role}, app {app_role}, auditor {auditor_role} "
        f"on schema {schema}",
        markup=False,
        soft_wrap=True,
    )
