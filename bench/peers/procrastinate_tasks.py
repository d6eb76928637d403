"""Procrastinate app for the benchmark.

Workers: ``procrastinate --app=bench.peers.procrastinate_tasks.app worker``.
"""

from __future__ import annotations

import os

from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy

from bench.jobs import MAX_ATTEMPTS, run_job

app = App(
    connector=PsycopgConnector(
        conninfo=os.environ.get(
            "BENCH_PROCRASTINATE_DSN", "host=127.0.0.1 user=postgres dbname=test"
        )
    )
)


# RetryStrategy.max_attempts counts retries after the first run
@app.task(name="noop", pass_context=True, retry=RetryStrategy(max_attempts=MAX_ATTEMPTS - 1))
def noop(context: JobContext, index: int, kind: str) -> None:
    attempts = context.job.attempts if context.job is not None else 0
    run_job(kind, attempts + 1)
