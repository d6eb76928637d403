"""Events: what is appended to the log, and the hash chain that seals it.

Pure: no IO. The store turns ``NewEvent`` into rows and rows into ``StoredEvent``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, assert_never

import orjson

#: ``prev_hash`` of the first event in the log.
GENESIS_HASH = "0" * 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventType(StrEnum):
    """The transitions of a job (docs/events.md; ``lifecycle.TRANSITIONS`` is the table), and
    the operator events of the queue (``is_operator_event``)."""

    ENQUEUED = "enqueued"
    ATTEMPTED = "attempted"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    REQUEUED = "requeued"
    COMPLETED = "completed"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"
    REVERSED = "reversed"
    REFUNDED = "refunded"
    #: the queue's operator stream (``OPERATOR_STREAM``), not a job's: see ``ledger.control``
    PAUSED = "paused"
    RESUMED = "resumed"
    BULK_REQUESTED = "bulk_requested"
    LIMITS_SET = "limits_set"


#: the stream of the queue's operator events (pause, resume, bulk actions): a stream of
#: the log that belongs to no job (job ids are UUIDs, so it cannot be one)
OPERATOR_STREAM = "operator"


def is_operator_event(event_type: EventType) -> bool:
    """Whether ``event_type`` is an operator event of the queue (``OPERATOR_STREAM``),
    which the job folds leave out, rather than a transition of a job."""
    match event_type:
        case EventType.PAUSED | EventType.RESUMED | EventType.BULK_REQUESTED | EventType.LIMITS_SET:
            return True
        case (
            EventType.ENQUEUED
            | EventType.ATTEMPTED
            | EventType.FAILED
            | EventType.DEAD_LETTERED
            | EventType.REQUEUED
            | EventType.COMPLETED
            | EventType.SUBMITTED
            | EventType.CANCELLED
            | EventType.REVERSED
            | EventType.REFUNDED
        ):
            return False
        case _:
            assert_never(event_type)


#: the operator events, and the transitions of jobs (as the log's type text)
OPERATOR_EVENTS = frozenset(event.value for event in EventType if is_operator_event(event))
JOB_EVENTS = frozenset(event.value for event in EventType if not is_operator_event(event))


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: the store assigns position, version, time and hash.

    ``due_in`` schedules the job: the store writes ``data["due_at"]`` as the
    event's own time plus ``due_in``, so due times come from the log's one clock.
    """

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    actor: str = "system"
    due_in: timedelta | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it stands in the log."""

    position: int
    job_id: str
    version: int
    type: EventType
    data: dict[str, Any]
    occurred_at: datetime
    actor: str
    idempotency_key: str | None
    prev_hash: str
    hash: str


#: a time as a ``datetime``, or as text not parsed yet (ISO 8601 from event data, or the
#: log's stored text on SQLite): long folds carry times through and parse them at the edge
Moment = datetime | str


def as_time(value: Moment | None) -> datetime | None:
    """A ``Moment`` as a ``datetime`` (text is parsed; ``Z`` and naive text mean UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return to_utc(value)


def required_time(value: Moment) -> datetime:
    """``as_time`` of a time that is never ``None``."""
    parsed = as_time(value)
    assert parsed is not None  # a Moment is never None
    return parsed


def to_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; a naive one is taken as UTC (that is how the log stores time)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since 1970 (the API's ``createdAt``, a job id's time), without floats."""
    return (to_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and a ``Z``: the one text form of a log time."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    prev_hash: str,
    position: int,
    job_id: str,
    version: int,
    event_type: str,
    data_json: str,
    occurred_at: datetime,
    actor: str,
    idempotency_key: str | None,
) -> str:
    """SHA-256 over every stored field and the previous event's hash.

    Changing, removing, inserting or reordering an event changes this hash or the
    next event's ``prev_hash``, which ``verify`` recomputes.
    """
    return sealed_hash(
        prev_hash,
        position,
        job_id,
        version,
        event_type,
        data_json,
        format_time(occurred_at),
        actor,
        idempotency_key,
    )


def sealed_hash(
    prev_hash: str,
    position: int,
    job_id: str,
    version: int,
    event_type: str,
    data_json: str,
    time_text: str,
    actor: str,
    idempotency_key: str | None,
) -> str:
    """``event_hash`` with the time already in its text form (``format_time``).

    Positional and datetime-free: ``verify`` calls it once per stored row, with the
    time text formatted by the database.
    """
    material = orjson.dumps(
        [
            prev_hash,
            position,
            job_id,
            version,
            event_type,
            data_json,
            time_text,
            actor,
            idempotency_key,
        ]
    )
    return hashlib.sha256(material).hexdigest()
