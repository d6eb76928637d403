"""``ledger demo``: see the whole system work on this machine in a few seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

from ledger.audit.statement import parse_statement
from ledger.audit.verify import verify_log
from ledger.cli.app import app, console
from ledger.cli.demo_toss import toss_demo
from ledger.cli.dlq import print_dlq
from ledger.cli.projections import print_history, print_stats
from ledger.compose.demo import OPERATOR, DemoOptions, DemoRun, run_demo
from ledger.compose.reconcile import projection_checks, reconcile, statement_check
from ledger.db import create_engine
from ledger.money import format_amount
from ledger.store import EventStore
from projections import history, queries
from projections.queries import TotalRow


class Provider(StrEnum):
    """Who the demo pays through."""

    SIMULATED = "simulated"
    TOSS_STUB = "toss-stub"


@app.command()
def demo(
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1, max=200_000, help="Settlements to enqueue (1000; 24 with --provider toss-stub)."
        ),
    ] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of gateway calls that time out.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same run.")] = 7,
    database: Annotated[
        Path, typer.Option(help="SQLite file to create (replaced if it exists).")
    ] = Path("ledger-demo.db"),
    provider: Annotated[
        Provider,
        typer.Option(
            help="simulated: the built-in gateway; toss-stub: the Toss handler against a "
            "faithful stub of Toss's payout API on a loopback port (docs/providers/toss.md)."
        ),
    ] = Provider.SIMULATED,
) -> None:
    """Run the whole system on a fresh SQLite ledger and show what an auditor sees."""
    if provider is Provider.TOSS_STUB:
        toss_demo(jobs or 24, seed, database)
        return
    jobs = jobs or 1000
    options = DemoOptions(jobs=jobs, fail_rate=fail_rate, seed=seed, database=database)
    console.print(
        f"[bold]settlement ledger demo[/]: {jobs:,} settlements, gateway fail rate "
        f"{fail_rate:.0%}, seed {seed}, ledger file {database}"
    )
    run = _run_with_progress(options)
    _report(run, options)


def _run_with_progress(options: DemoOptions) -> DemoRun:
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        enqueue = progress.add_task("enqueue", total=options.jobs)
        settle = progress.add_task("settle", total=options.jobs)
        return run_demo(
            options,
            on_enqueue=lambda n: progress.update(enqueue, completed=n),
            on_settled=lambda n: progress.update(settle, completed=n),
        )


def _report(run: DemoRun, options: DemoOptions) -> None:
    engine = create_engine(run.settings.database_url)
    store = EventStore(engine)
    try:
        console.print(
            f"enqueued {run.enqueued:,}; the flaky client re-sent {run.duplicates_sent:,} "
            f"with the same key, and {run.duplicates_deduplicated:,} of those were recognised "
            "(no second job, no second payout)"
        )
        console.print(Rule("queue stats"))
        print_stats(queries.stats(engine, datetime.now(UTC)), title="after the run")
        console.print(Rule("dead-letter queue"))
        print_dlq(queries.dlq_page(engine, 0, 9))
        console.print(Rule("settled totals"))
        _print_totals(queries.totals(engine, group_by=()))
        if run.requeued_job is not None:
            console.print(Rule(f"a dead-lettered job, requeued by {OPERATOR}"))
            print_history(history.history(store, run.requeued_job))
        _after_the_queue(run, store)
        console.print(Rule("auditor checks"))
        result = verify_log(engine)
        _check("verify", result.ok, f"{result.checked:,} events, head {result.head_hash[:16]}…")
        statement = parse_statement(run.gateway.statement_csv().splitlines())
        report = reconcile(engine, [*projection_checks(), statement_check(statement)])
        for check in report.checks:
            _check(f"reconcile: {check.name}", check.ok, check.summary)
    finally:
        engine.dispose()
    _next_steps(options.database)


def _after_the_queue(run: DemoRun, store: EventStore) -> None:
    """The settlement after the queue: a cancel, a webhook confirmation, a bounce, a refund."""
    shown = (
        ("cancelled by the operator before it ran", run.cancelled_job),
        (
            f"accepted by the provider, confirmed by its webhook "
            f"({len(run.confirmed_jobs)} such payouts)",
            run.confirmed_jobs[0] if run.confirmed_jobs else None,
        ),
        ("paid, then returned by the provider (a bounce)", run.bounced_job),
        ("paid, then half refunded by the payee", run.refunded_job),
    )
    for title, job_id in shown:
        if job_id is not None:
            console.print(Rule(title))
            print_history(history.history(store, job_id))


def _print_totals(rows: list[TotalRow]) -> None:
    table = Table(title="settlements per currency: paid, what came back, net")
    for column in ("currency", "jobs", "paid", "reversed", "refunded", "net"):
        table.add_column(column, justify="right" if column != "currency" else "left")
    for row in rows:
        table.add_row(
            row.currency,
            f"{row.jobs:,}",
            *(
                format_amount(value, row.currency)
                for value in (row.amount, row.reversed, row.refunded, row.net)
            ),
        )
    console.print(table)


def _check(name: str, ok: bool, summary: str) -> None:
    mark = "[green]OK[/]" if ok else "[red]FAILED[/]"
    console.print(f"{mark}  {name}: {summary}", highlight=False)


def _next_steps(database: Path) -> None:
    url = f"sqlite:///{database}"
    console.print(Rule("look further"))
    console.print(
        f"export LEDGER_DATABASE_URL={url}\n"
        "ledger stats                      # the queue as it stands\n"
        "ledger dlq list                   # dead-lettered jobs and why\n"
        "ledger history JOB_ID             # one job's timeline\n"
        "ledger events --format table      # the log itself\n"
        "ledger verify                     # tamper-evidence check\n"
        "ledger replay --check             # rebuild projections and compare\n"
        "ledger serve                      # the HTTP API on http://127.0.0.1:8000/docs",
        markup=False,
        highlight=False,
    )
