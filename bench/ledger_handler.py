"""The no-op handler the ledger worker runs in the drain and retry-heavy workloads.

Run as ``ledger worker --handler bench.ledger_handler:noop``. The job kind
(``ok``/``flaky``/``dead``, see bench/jobs.py) travels in the request's
``metadata["bench_kind"]``.

TODO(merge, issue 3): issue 3 says a handler "receives the job (id, attempt,
idempotency key, the settlement request)". The attribute names used below
(``job.attempt``, ``job.request``) are the only assumption here; adjust these
two lines if the worker's job object names them differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.jobs import run_job


def _metadata(request: Any) -> Mapping[str, Any]:
    if isinstance(request, Mapping):
        return request.get("metadata") or {}
    return getattr(request, "metadata", None) or {}


def noop(job: Any) -> None:
    kind = str(_metadata(job.request).get("bench_kind", "ok"))
    run_job(kind, int(job.attempt))
