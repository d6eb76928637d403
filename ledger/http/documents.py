"""The JSON documents the API returns (camelCase keys), built from domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.events import StoredEvent, format_time
from ledger.lifecycle import Job


def state_name(job: Job, now: datetime) -> str:
    """The job's state as users see it (``delayed`` is waiting with a future due time)."""
    return "delayed" if job.is_delayed(now) else job.status.value


def job_document(job: Job, now: datetime) -> dict[str, Any]:
    request = job.request
    return {
        "jobId": job.job_id,
        "state": state_name(job, now),
        "data": settlement_data(request),
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "lastError": job.last_error,
        "worker": job.worker,
        "dueAt": format_time(job.due_at) if job.due_at else None,
        "createdAt": format_time(job.created_at),
        "updatedAt": format_time(job.updated_at),
        "version": job.version,
    }


def settlement_data(request: dict[str, Any] | Any) -> dict[str, Any]:
    """The settlement fields under their wire names (the replaced system's field names)."""
    return {
        "userId": request["user_id"],
        "placeId": request["place_id"],
        "missionId": request["mission_id"],
        "amount": request["amount"],
        "currency": request["currency"],
        "idempotencyKey": request["idempotency_key"],
        "metadata": request.get("metadata", {}),
    }


def event_document(event: StoredEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "version": event.version,
        "type": event.type.value,
        "data": event.data,
        "occurredAt": format_time(event.occurred_at),
        "actor": event.actor,
    }


def history_document(job: Job, events: Sequence[StoredEvent], now: datetime) -> dict[str, Any]:
    return {
        "jobId": job.job_id,
        "state": state_name(job, now),
        "events": [event_document(event) for event in events],
    }
