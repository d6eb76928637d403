"""Builders for test data (plain functions, no IO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.events import GENESIS_HASH, EventType, StoredEvent
from ledger.request import SettlementRequest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def request(**overrides: Any) -> SettlementRequest:
    fields: dict[str, Any] = {
        "user_id": "user-1",
        "place_id": "place-1",
        "mission_id": "mission-1",
        "amount": 10_000,
        "currency": "KRW",
        "idempotency_key": "key-1",
        "metadata": {"qr_token": "qr-abc", "receipt_id": "r-1"},
    }
    fields.update(overrides)
    return SettlementRequest(**fields)


def stored(
    event_type: EventType,
    *,
    job_id: str = "job-1",
    version: int = 1,
    position: int | None = None,
    data: dict[str, Any] | None = None,
    actor: str = "test",
    at: datetime | None = None,
) -> StoredEvent:
    """A stored event for pure folds (hashes are not checked there)."""
    if data is None:
        data = default_data(event_type, version)
    return StoredEvent(
        position=position if position is not None else version,
        job_id=job_id,
        version=version,
        type=event_type,
        data=data,
        occurred_at=at or T0 + timedelta(seconds=version),
        actor=actor,
        idempotency_key=None,
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
    )


def default_data(event_type: EventType, attempt: int = 1) -> dict[str, Any]:
    if event_type is EventType.ENQUEUED:
        return {
            "request": request().as_record(),
            "fingerprint": request().fingerprint(),
            "max_attempts": 3,
            "due_at": None,
        }
    if event_type is EventType.FAILED:
        return {"attempt": attempt, "reason": "boom", "retryable": True}
    if event_type is EventType.REQUEUED:
        return {"due_at": None, "reason": "retry"}
    return {"attempt": attempt}
