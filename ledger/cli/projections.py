"""Read-side commands: ``stats``, ``history``, ``replay``, ``project``.

Thin: parse, call ``projections`` (runner, queries, reconcile), format. ``stats``
reads the live projections plus the tail of the log they have not folded yet
(``projections.reads``): it answers for now and writes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ledger.business_time import parse_moment
from ledger.cli.app import app, audit_engine, console, err_console, load_settings, print_json
from ledger.control import NO_CONTROLS, controls_after
from ledger.db import create_engine
from ledger.errors import DatabaseUnavailable, InvalidRequest
from ledger.events import OPERATOR_STREAM, StoredEvent, format_time
from ledger.health import check_health, queue_status
from ledger.money import format_amount
from ledger.request import MAX_JOB_ID_LENGTH
from ledger.service import build_ledger
from ledger.store import EventStore
from ledger.text import check_text, shown
from projections import as_of as in_memory
from projections import history as histories
from projections import queries
from projections.fold import MONEY_BUCKETS, Totals
from projections.reads import ReadModels
from projections.runner import OnBatch, Projector, rebuild, replay
from projections.schema import SCRATCH
from projections.stats import BUCKETS, QueueStats, net

#: a catch-up with at least this many events to go shows a progress bar
PROGRESS_THRESHOLD = 10_000


@contextmanager
def open_store() -> Iterator[EventStore]:
    """The event store of LEDGER_DATABASE_URL, disposed of afterwards."""
    settings = load_settings()
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        yield EventStore(engine)
    finally:
        engine.dispose()


@contextmanager
def open_audit_log() -> Iterator[EventStore]:
    """The log where auditors read (LEDGER_AUDIT_DATABASE_URL, else the primary); reads only."""
    with audit_engine(load_settings()) as engine:
        yield EventStore(engine)


def parse_time(text: str, option: str) -> datetime:
    """An instant for an as-of option, or ``InvalidRequest`` (exit 2).

    ISO 8601 with ``Z`` or an offset; a time without one is business time
    (``LEDGER_BUSINESS_TIMEZONE``); a date means the end of that business day
    ("as of the 31st": as the log stood when the day closed).
    """
    zone = load_settings().business_zone
    return parse_moment(text, option, zone, end_of_day=True)


# -- progress ----------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Events per second over the last few seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")


@contextmanager
def progress_bar(label: str, total: int, *, show: bool) -> Iterator[OnBatch | None]:
    """A rich progress bar on stderr fed by the runner's per-batch callback."""
    if not show:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )
    task = progress.add_task(label, total=max(total, 1))

    def advance(events: int, _position: int) -> None:
        done = progress.tasks[0].completed + events
        progress.update(task, advance=events, total=max(progress.tasks[0].total or 0, done))

    with progress:
        yield advance


# -- stats -------------------------------------------------------------------------


@app.command()
def stats(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the object of GET /api/queue/stats.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Stats as they stood at this ISO 8601 time: the log up to its last event at "
            "or before it, folded in memory (writes nothing).",
        ),
    ] = None,
) -> None:
    """Queue statistics: jobs and amounts waiting, delayed, processing, in the DLQ, completed."""
    moment = parse_time(as_of, "--as-of") if as_of else None
    controls = NO_CONTROLS
    if moment is None:
        with open_store() as store:
            result = ReadModels(store).stats(datetime.now(UTC))
            latest = store.latest_events([OPERATOR_STREAM]).get(OPERATOR_STREAM)
            controls = controls_after(latest)
    else:
        # folded in memory: a read-only role, or the auditors' hot standby, can ask too
        with open_audit_log() as store:
            result = in_memory.stats_as_of(store, moment)
    if as_json:
        # the queue's health is a fact of now, not of the moment asked about
        if moment is None:
            limits = {"attemptsPerSecond": controls.rate or None}
            print_json({**result.as_api(_status()), "paused": controls.paused, "limits": limits})
        else:
            print_json(result.as_api("as-of"))
    else:
        title = "as of " + format_time(result.now) + (", PAUSED" if controls.paused else "")
        print_stats(result, title=title)


def _status() -> str:
    """The health part of the stats object: ask the log and the hot queue."""
    ledger = build_ledger(load_settings())
    try:
        return queue_status(check_health(ledger))
    finally:
        ledger.close()


def print_stats(result: QueueStats, *, title: str) -> None:
    table = Table(title="queue stats", caption=f"{title}, log position {result.position}")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    currencies = sorted(result.by_currency)
    for currency in currencies:
        table.add_column(currency, justify="right")
    for bucket in (*BUCKETS, "enqueued"):
        label = "total (enqueued)" if bucket == "enqueued" else bucket
        amounts = [
            format_amount(result.by_currency[c][bucket].amount, c).removesuffix(f" {c}")
            for c in currencies
        ]
        table.add_row(label, f"{result.count(bucket):,}", *amounts)
        if bucket == "submitted" and result.overdue:
            late = [format_amount(result.overdue.get(c, Totals()).amount, c) for c in currencies]
            count = sum(t.jobs for t in result.overdue.values())
            table.add_row("  of which overdue", f"{count:,}", *(a.split(" ")[0] for a in late))
    table.add_section()
    for name in (*MONEY_BUCKETS, "net"):
        amounts = [
            format_amount(
                net(result.by_currency[c]) if name == "net" else result.by_currency[c][name].amount,
                c,
            ).removesuffix(f" {c}")
            for c in currencies
        ]
        jobs = "" if name == "net" else f"{result.count(name):,}"
        table.add_row(f"money {name}", jobs, *amounts)
    console.print(table)


# -- history -----------------------------------------------------------------------


@app.command()
def history(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the object of GET /api/jobs/{id}/history.")
    ] = False,
) -> None:
    """A job's full history, read from the log: every event, who caused it and why.

    Text that is not printable (an escape code in an old reason) is shown escaped.
    """
    check_text(job_id, "job id", max_length=MAX_JOB_ID_LENGTH)
    with open_audit_log() as store:
        found = histories.history(store, job_id)
    if as_json:
        print_json(found.as_api())
        return
    print_history(found)


def print_history(found: histories.JobHistory) -> None:
    """The job's summary line and its timeline table (time, event, attempt, actor, reason)."""
    first = found.events[0].data["request"]
    console.print(
        shown(
            f"job {found.job_id}: {found.state}; "
            f"{format_amount(int(first['amount']), str(first['currency']))} to "
            f"{first['user_id']} (place {first['place_id']}, mission {first['mission_id']}, "
            f"key {first['idempotency_key']})"
        ),
        markup=False,
        highlight=False,
    )
    table = Table()
    for column in ("time", "event", "attempt", "actor", "reason", "money", "provider"):
        table.add_column(column)
    currency = str(first["currency"])
    for event in found.events:
        cells = (
            format_time(event.occurred_at), event.type.value, _attempt(event), event.actor,
            _reason(event), _money(event, currency), _provider(event),
        )  # fmt: skip
        table.add_row(*(Text(shown(cell)) for cell in cells))
    console.print(table)


def _attempt(event: StoredEvent) -> str:
    attempt = event.data.get("attempt")
    return "" if attempt is None else str(attempt)


def _money(event: StoredEvent, currency: str) -> str:
    """The amount an event moved: paid (completed), given back, or a new round's."""
    amount = event.data.get("amount")
    return "" if amount is None else format_amount(int(amount), currency)


def _provider(event: StoredEvent) -> str:
    """The provider's outcome an event records: reference, fee, status; a refund's key."""
    parts = [
        f"{name} {event.data[name]}"
        for name in ("reference", "fee", "status", "key")
        if event.data.get(name) is not None
    ]
    return ", ".join(parts)


def _reason(event: StoredEvent) -> str:
    reason = event.data.get("reason")
    due = event.data.get("due_at")
    text = "" if reason is None else str(reason)
    return f"{text} (due {due})" if due else text


# -- replay and project ------------------------------------------------------------


@app.command(name="replay")
def replay_command(
    until: Annotated[
        str | None, typer.Option(help="Replay events up to this ISO 8601 time (inclusive).")
    ] = None,
    until_position: Annotated[
        int | None, typer.Option(min=0, help="Replay events up to this log position.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            help="Fold the log in memory up to the live checkpoint and diff it against the "
            "live projections (writes nothing); exit 1 listing any difference or unbalanced "
            "currency."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Replay the log into scratch tables: stats as of a moment, or --check the live ones."""
    if until is not None and until_position is not None:
        raise InvalidRequest("give --until or --until-position, not both")
    if check and (until is not None or until_position is not None):
        raise InvalidRequest("--check compares the full replay with the live projections")
    moment = parse_time(until, "--until") if until else None
    with open_store() as store:
        if check:
            _check(store, as_json=as_json)
            return
        head = store.head().position
        with progress_bar(
            "replaying", until_position or head, show=head >= PROGRESS_THRESHOLD
        ) as bar:
            position = replay(store, until_position=until_position, until_time=moment, on_batch=bar)
        at = moment or _time_of(store, position)
        result = queries.stats(store.engine, at, SCRATCH)
    if as_json:
        print_json(result.as_api())
    else:
        print_stats(result, title=f"replayed to {format_time(at)}")


def _time_of(store: EventStore, position: int) -> datetime:
    """The time of the event at ``position`` (now for an empty log)."""
    for event in store.read_all(position - 1, until_position=position):
        return event.occurred_at
    return datetime.now(UTC)


def _check(store: EventStore, *, as_json: bool) -> None:
    report = in_memory.check(store, datetime.now(UTC))
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "position": report.position,
                "logHeadPosition": report.log_head,
                "behind": report.behind,
                "differences": report.difference_count,
                "problems": report.problems(),
                "live": [item.as_dict() for item in report.live],
                "replayed": [item.as_dict() for item in report.replayed],
            }
        )
    elif report.ok:
        console.print(
            f"ok: the live projections equal a fresh replay at position {report.position}; "
            f"money is conserved in every currency; the live projections are {report.behind} "
            f"events behind the log (head {report.log_head})",
            markup=False,
        )
    else:
        for line in report.problems():
            console.print(line, markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def project(
    follow: Annotated[
        bool, typer.Option(help="Keep following the log until interrupted (Ctrl-C, SIGTERM).")
    ] = False,
    full_rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Replay from event 0 into fresh tables and swap them in (appends may go on).",
        ),
    ] = False,
    poll: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls with --follow.")
    ] = 1.0,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Events per transaction.")
    ] = 5000,
) -> None:
    """Bring the projections up to date with the log (catch-up from the checkpoint)."""
    with open_store() as store:
        if full_rebuild:
            head = store.head().position
            with progress_bar("rebuilding", head, show=True) as bar:
                position = rebuild(store, batch_size=batch_size, on_batch=bar)
        else:
            projector = Projector(store, batch_size=batch_size)
            backlog = projector.backlog()
            with progress_bar("catching up", backlog, show=backlog >= PROGRESS_THRESHOLD) as bar:
                position = projector.catch_up(on_batch=bar)
        console.print(f"projections at log position {position}", markup=False)
        if follow:
            position = _follow(Projector(store, batch_size=batch_size), poll)
            console.print(f"stopped at log position {position}", markup=False)


def _follow(projector: Projector, poll: float) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def on_unavailable(error: DatabaseUnavailable) -> None:
        err_console.print(f"warning: {error.message}; retrying", markup=False, highlight=False)

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        return projector.follow(stop, poll_seconds=poll, on_unavailable=on_unavailable)
    except KeyboardInterrupt:
        return projector.checkpoint()
    finally:
        signal.signal(signal.SIGTERM, previous)
