"""The JSON document of ``GET /api/jobs/{id}`` (camelCase keys), built from a folded job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.events import format_time
from ledger.lifecycle import Job
from ledger.request import wire_settlement


def job_document(job: Job, now: datetime) -> dict[str, Any]:
    """The job's current state; ``delayed`` is a waiting job due after ``now``."""
    return {
        "jobId": job.job_id,
        "state": "delayed" if job.is_delayed(now) else job.status.value,
        "data": wire_settlement(job.request),
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "lastError": job.last_error,
        "worker": job.worker,
        "dueAt": format_time(job.due_at) if job.due_at else None,
        "createdAt": format_time(job.created_at),
        "updatedAt": format_time(job.updated_at),
        "version": job.version,
        "round": job.round,
        "money": {
            "currency": job.currency,
            "amount": job.amount,
            "paid": job.paid,
            "reversed": job.reversed,
            "refunded": job.refunded,
            "net": job.net,
        },
        "provider": {
            "reference": job.reference,
            "fee": job.fee,
            "status": job.provider_status,
        },
    }
