"""Celery app and task for the benchmark (``celery -A bench.peers.celery_tasks worker``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.jobs import MAX_ATTEMPTS, JobFailed, run_job

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_redirect_stdouts=False,
)


@app.task(bind=True, max_retries=MAX_ATTEMPTS - 1, name="noop")
def noop(self: Any, index: int, kind: str) -> None:
    attempt = self.request.retries + 1
    try:
        run_job(kind, attempt)
    except JobFailed as exc:
        if attempt >= MAX_ATTEMPTS:
            raise
        raise self.retry(exc=exc, countdown=0) from None
