"""The settlement ledger: an event-sourced, auditable job ledger for money payouts."""

from ledger.errors import (
    ConcurrencyError,
    IdempotencyConflict,
    IllegalTransition,
    InvalidRequest,
    LedgerError,
    PermanentFailure,
)
from ledger.events import EventType, NewEvent, StoredEvent
from ledger.lifecycle import Job, JobStatus
from ledger.request import SettlementRequest, parse_request

__all__ = [
    "ConcurrencyError",
    "EventType",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidRequest",
    "Job",
    "JobStatus",
    "LedgerError",
    "NewEvent",
    "PermanentFailure",
    "SettlementRequest",
    "StoredEvent",
    "parse_request",
]
