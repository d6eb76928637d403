"""``ledger worker``, ``ledger recover`` and ``ledger dlq requeue``."""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta
from types import FrameType
from typing import Annotated

import typer

from ledger.cli.app import app, console, load_settings, print_json
from ledger.cli.dlq import dlq_app
from ledger.handler import load_handler
from ledger.request import MAX_ID_LENGTH, MAX_JOB_ID_LENGTH, MAX_REASON_LENGTH
from ledger.service import build_ledger
from ledger.text import check_text
from ledger.worker import Worker, WorkerOptions


@app.command()
def worker(
    handler: Annotated[str, typer.Option(help="The job handler, as package.module:callable.")],
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Handler threads.")] = 1,
    prefetch: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=10_000,
            help="Jobs claimed ahead of free threads [adaptive: about 0.25 s of work per "
            "thread, from --concurrency up to 256].",
        ),
    ] = None,
    burst: Annotated[
        bool,
        typer.Option(
            "--burst",
            help="Exit once nothing is ready, running or due within --burst-horizon "
            "(the output says how many delayed jobs are left).",
        ),
    ] = False,
    burst_horizon: Annotated[
        float,
        typer.Option(
            min=0, help="With --burst: seconds ahead a delayed job must be due to be waited for."
        ),
    ] = 60.0,
    lease: Annotated[
        float | None,
        typer.Option(min=0.1, help="Lease per attempt in seconds (default LEDGER_LEASE_SECONDS)."),
    ] = None,
) -> None:
    """Claim and run jobs until SIGTERM/SIGINT (graceful: running jobs finish), exit 0."""
    settings = load_settings()
    function = load_handler(handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    ledger = build_ledger(settings)
    options = WorkerOptions(
        concurrency=concurrency,
        prefetch=prefetch,
        burst=burst,
        burst_horizon=timedelta(seconds=burst_horizon),
        lease=timedelta(seconds=lease or settings.lease_seconds),
        sweep_seconds=settings.sweep_seconds,
    )
    runner = Worker(ledger, function, options)
    _install_signals(runner)
    try:
        stats = runner.run()
    finally:
        ledger.close()
    print_json(
        {
            "workerId": runner.worker_id,
            "claimed": stats.claimed,
            "completed": stats.completed,
            "retried": stats.retried,
            "deadLettered": stats.dead_lettered,
            "refused": stats.refused,
            "delayedLeft": stats.delayed_left,
            # a burst run that stopped because the queue is paused (ledger resume)
            "paused": stats.paused,
        }
    )


def _install_signals(runner: Worker) -> None:
    """First SIGTERM/SIGINT: graceful stop. A second one: leave now (leases expire)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if runner.stopping:
            os._exit(128 + signum)
        runner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


@app.command()
def recover() -> None:
    """Rebuild the Redis hot queue from the log (idempotent; safe next to running workers)."""
    settings = load_settings()
    ledger = build_ledger(settings)
    try:
        report = ledger.recover()
    finally:
        ledger.close()
    console.print(
        f"recovered from {report.position} events: {report.live} live jobs, "
        f"{report.pushed} pushed, {report.restored} leases restored",
        markup=False,
    )


@dlq_app.command("requeue")
def dlq_requeue(
    job_id: Annotated[str, typer.Argument(help="The dead-lettered job's id.")],
    actor: Annotated[str, typer.Option(help="Who requeues it (recorded in the log).")] = "operator",
    reason: Annotated[
        str, typer.Option(help="Why (recorded in the log).")
    ] = "requeued by operator",
) -> None:
    """Requeue a dead-lettered job: due now, with a fresh attempt budget.

    The actor and reason must be printable text (no control or bidi characters).
    """
    check_text(job_id, "job id", max_length=MAX_JOB_ID_LENGTH)
    check_text(actor, "--actor", max_length=MAX_ID_LENGTH)
    check_text(reason, "--reason", max_length=MAX_REASON_LENGTH, edges=True)
    settings = load_settings()
    ledger = build_ledger(settings)
    try:
        job = ledger.requeue_from_dlq(job_id, actor=actor, reason=reason)
    finally:
        ledger.close()
    print_json({"jobId": job.job_id, "status": job.status.value, "version": job.version})
