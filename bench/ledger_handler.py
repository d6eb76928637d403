"""The no-op handler the ledger worker runs in the drain and retry-heavy workloads.

Run as ``ledger worker --handler bench.ledger_handler:noop``. The job kind
(``ok``/``flaky``/``dead``, see bench/jobs.py) travels in the request's
``metadata["bench_kind"]``.
"""

from __future__ import annotations

from bench.jobs import run_job
from ledger.claims import ClaimedJob


def noop(job: ClaimedJob) -> None:
    kind = str(job.request.metadata.get("bench_kind", "ok"))
    run_job(kind, job.attempt)
