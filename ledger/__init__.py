"""The settlement ledger: an event-sourced, auditable job ledger for money payouts.

The names in ``__all__`` are the public types: the events a script reads, a
job's folded state, the request a settlement is made of, what a handler is
given and what it may return (``ProviderResult``), and the errors to catch.
Scripts open the log with ``ledger.scripts.connect`` (docs/scripts.md says why
it lives there). Every other module is internal and may move;
``tests/unit/test_public_api.py`` pins this list.
"""

from ledger.claims import ClaimedJob
from ledger.errors import (
    ConcurrencyError,
    DatabaseUnavailable,
    IdempotencyConflict,
    IllegalTransition,
    InvalidFilter,
    InvalidRequest,
    InvalidStatement,
    JobNotFound,
    LedgerError,
    NaiveTime,
    PermanentFailure,
    PositionPastHead,
    ProviderRefused,
    RecordConflict,
    SchemaNotReady,
    TooMuchBack,
    WrongState,
)
from ledger.events import EventType, StoredEvent
from ledger.lifecycle import Job, JobStatus
from ledger.provider import ProviderResult
from ledger.request import SettlementRequest

__all__ = [
    "ClaimedJob",
    "ConcurrencyError",
    "DatabaseUnavailable",
    "EventType",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidFilter",
    "InvalidRequest",
    "InvalidStatement",
    "Job",
    "JobNotFound",
    "JobStatus",
    "LedgerError",
    "NaiveTime",
    "PermanentFailure",
    "PositionPastHead",
    "ProviderRefused",
    "ProviderResult",
    "RecordConflict",
    "SchemaNotReady",
    "SettlementRequest",
    "StoredEvent",
    "TooMuchBack",
    "WrongState",
]
