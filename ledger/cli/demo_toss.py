"""``ledger demo --provider toss-stub``: the story against the Toss stub, then the checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.rule import Rule

from ledger.audit.statement import parse_statement
from ledger.audit.verify import verify_log
from ledger.cli.app import console
from ledger.cli.projections import print_history
from ledger.compose.reconcile import projection_checks, reconcile, statement_check
from ledger.compose.toss_demo import TossDemoOptions, TossDemoRun, run_toss_demo
from ledger.db import create_engine
from ledger.providers.toss.inbox import WebhookInbox
from ledger.store import EventStore
from projections import history, queries
from projections.runner import Projector


def toss_demo(jobs: int, seed: int, database: Path) -> None:
    """Run ``ledger.compose.toss_demo`` and show what happened."""
    options = TossDemoOptions(jobs=jobs, seed=seed, database=database)
    console.print(
        f"[bold]settlement ledger demo against the Toss stub[/]: {jobs:,} settlements, "
        f"seed {seed}, ledger file {database}"
    )
    run = run_toss_demo(options, on_step=lambda text: console.print(f"• {text}"))
    _report(run)


def _report(run: TossDemoRun) -> None:
    engine = create_engine(run.settings.database_url)
    store = EventStore(engine)
    try:
        Projector(store).catch_up()
        _toss_side(run, WebhookInbox(engine))
        shown = (
            ("accepted by Toss, but the call timed out: found, not paid again", run.timed_out_job),
            ("refused by Toss: the seller has no KYC (dead-lettered)", run.refused_job),
            ("cancelled through Toss before it executed", run.cancelled_job),
            ("failed at Toss, paid by the retry under a new refPayoutId", run.failed_then_paid_job),
            ("paid, then returned by the bank (a bounce)", run.bounced_job),
            ("paid, then half refunded by the payee", run.refunded_job),
        )
        for title, job_id in shown:
            if job_id is not None:
                console.print(Rule(title))
                print_history(history.history(store, job_id))
        console.print(Rule("settled totals"))
        for row in queries.totals(engine, group_by=()):
            console.print(
                f"{row.currency}: {row.jobs} jobs, paid {row.amount:,}, reversed "
                f"{row.reversed:,}, refunded {row.refunded:,}, net {row.net:,}",
                highlight=False,
            )
        console.print(Rule("auditor checks"))
        result = verify_log(engine)
        _check("verify", result.ok, f"{result.checked:,} events, head {result.head_hash[:16]}…")
        statement = parse_statement(run.stub.statement())
        report = reconcile(engine, [*projection_checks(), statement_check(statement)])
        for check in report.checks:
            _check(f"reconcile: {check.name}", check.ok, check.summary)
    finally:
        engine.dispose()


def _toss_side(run: TossDemoRun, inbox: WebhookInbox) -> None:
    stub = run.stub
    console.print(Rule("at the Toss stub"))
    statuses = Counter(str(payout["status"]) for payout in stub.payouts.values())
    answered = Counter(status for _, status in stub.delivered)
    outcomes = Counter(entry.outcome for entry in inbox.entries(limit=10_000))
    console.print(
        f"calls: {dict(stub.calls)}\n"
        f"payouts: {dict(statuses)}\n"
        f"webhooks delivered: {sum(answered.values())} (HTTP {dict(answered)}); "
        f"recorded once each: {dict(outcomes)}\n"
        f"double payments (rounds Toss paid more than once): {stub.double_payments()}",
        highlight=False,
        markup=False,
    )
    _check("no payout paid twice", stub.double_payments() == 0, "one payout per round")


def _check(name: str, ok: bool, summary: str) -> None:
    mark = "[green]OK[/]" if ok else "[red]FAILED[/]"
    console.print(f"{mark}  {name}: {summary}", highlight=False)
