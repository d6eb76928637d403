"""What an append is made of before it reaches the log: prepared enqueues and sealed rows.

``prepare_enqueue`` builds a request's key, fingerprint and ``enqueued`` event
outside the append lock (the lock serialises every writer, so it is held only
for what needs the log). ``seal`` turns a new event into the stored event and
the row to insert: its data as canonical JSON, its time, and the SHA-256 that
chains it to the event before (``ledger.events.sealed_hash``). ``ledger.store``
calls both under the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson

from ledger.append_sql import Row
from ledger.events import EventType, NewEvent, StoredEvent, format_time, sealed_hash
from ledger.request import SettlementRequest, canonical_json, fingerprint_of


class PreparedEnqueue(NamedTuple):
    """A request's idempotency key, fingerprint and ``enqueued`` event, made before the lock."""

    key: str
    fingerprint: str
    event: NewEvent


def prepare_enqueue(
    request: SettlementRequest,
    *,
    max_attempts: int,
    delay: timedelta | None = None,
    actor: str = "service",
) -> PreparedEnqueue:
    """A request's key, fingerprint and ``enqueued`` event (its record dumped once for both).

    Raises ``ValueError`` for a ``max_attempts`` below 1 or a negative ``delay``.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if delay is not None and delay < timedelta(0):
        raise ValueError("delay must not be negative")
    record = request.as_record()
    fingerprint = fingerprint_of(record)
    data: dict[str, Any] = {
        "request": record,
        "fingerprint": fingerprint,
        "max_attempts": max_attempts,
        "due_at": None,
    }
    new = NewEvent(EventType.ENQUEUED, data, actor, due_in=delay or None)
    return PreparedEnqueue(request.idempotency_key, fingerprint, new)


@dataclass(frozen=True, slots=True)
class Stamp:
    """A batch's one event time: as a datetime, as hashed text, as the driver binds it."""

    moment: datetime
    text: str
    value: Any


def seal(
    position: int,
    job_id: str,
    version: int,
    new: NewEvent,
    stamp: Stamp,
    prev_hash: str,
) -> tuple[StoredEvent, Row]:
    payload = new.data
    if new.due_in is not None:
        payload = {**payload, "due_at": format_time(stamp.moment + new.due_in)}
    data_json = canonical_json(payload).decode()
    request: Mapping[str, Any] = payload.get("request", {}) if new.type == "enqueued" else {}
    key = request.get("idempotency_key")
    # the plain text of the type: a str-enum member would be bound by its name by some drivers
    kind = _TYPE_TEXT[new.type]
    digest = sealed_hash(
        prev_hash, position, job_id, version, kind, data_json, stamp.text, new.actor, key
    )
    # read back from the stored text, so appended and re-read events are identical
    data = orjson.loads(data_json)
    event = StoredEvent(
        position, job_id, version, new.type, data, stamp.moment, new.actor, key, prev_hash, digest
    )
    row = (
        position,
        job_id,
        version,
        kind,
        data_json,
        stamp.value,
        new.actor,
        key,
        request.get("user_id"),
        request.get("place_id"),
        request.get("mission_id"),
        prev_hash,
        digest,
    )
    return event, row


_TYPE_TEXT = {member: member.value for member in EventType}
