"""The RQ job function for the benchmark (``rq worker`` imports it by path)."""

from __future__ import annotations

from rq import get_current_job

from bench.jobs import MAX_ATTEMPTS, run_job


def noop(index: int, kind: str) -> None:
    job = get_current_job()
    retries_left = job.retries_left if job is not None else None
    # enqueued with Retry(max=MAX_ATTEMPTS - 1): retries_left counts down per retry
    attempt = 1 if retries_left is None else MAX_ATTEMPTS - retries_left
    run_job(kind, attempt)
