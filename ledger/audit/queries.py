"""Auditors' queries over the log: filtered, keyset-paged, streaming.

``iter_events`` is the one query behind ``ledger events`` and ``GET /api/events``.
Who/where/what (user, place, mission), the amount and the currency are set only
on a job's ``enqueued`` row, so each event is joined to its job's first event
(``version = 1``, by the ``(job_id, version)`` index).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from ledger.db import READ_ONLY
from ledger.events import EventType, format_time, to_utc
from ledger.schema import events as events_table
from ledger.store import translate_errors

#: the export's columns, in their one stable order
COLUMNS = (
    "position",
    "occurred_at",
    "job_id",
    "version",
    "type",
    "actor",
    "idempotency_key",
    "user_id",
    "place_id",
    "mission_id",
    "amount",
    "currency",
    "data",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True, slots=True)
class EventFilters:
    """Which events to return. Every field is optional; set fields must all match.

    ``from_time`` is inclusive and ``to_time`` exclusive, so consecutive windows
    (one day, the next day) never overlap.
    """

    user_id: str | None = None
    place_id: str | None = None
    mission_id: str | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    types: tuple[EventType, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event with its job's who/where/what and money (from the job's ``enqueued`` row)."""

    position: int
    occurred_at: datetime
    job_id: str
    version: int
    type: str
    actor: str
    idempotency_key: str | None
    user_id: str | None
    place_id: str | None
    mission_id: str | None
    amount: int | None
    currency: str | None
    data: dict[str, Any]
    data_json: str
    prev_hash: str
    hash: str

    def as_record(self) -> dict[str, Any]:
        """JSON-ready fields in ``COLUMNS`` order (``data`` as an object, time as text)."""
        return {
            "position": self.position,
            "occurred_at": format_time(self.occurred_at),
            "job_id": self.job_id,
            "version": self.version,
            "type": self.type,
            "actor": self.actor,
            "idempotency_key": self.idempotency_key,
            "user_id": self.user_id,
            "place_id": self.place_id,
            "mission_id": self.mission_id,
            "amount": self.amount,
            "currency": self.currency,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def events_query(filters: EventFilters, after: int, limit: int) -> sa.Select[Any]:
    """The SQL for one page: events after ``after`` matching ``filters``, by position."""
    event = events_table.alias("e")
    job = events_table.alias("j")
    query = (
        sa.select(
            event.c.position,
            event.c.occurred_at,
            event.c.job_id,
            event.c.version,
            event.c.type,
            event.c.actor,
            event.c.data,
            event.c.prev_hash,
            event.c.hash,
            job.c.idempotency_key.label("job_key"),
            job.c.user_id,
            job.c.place_id,
            job.c.mission_id,
            job.c.data.label("job_data"),
        )
        .select_from(
            event.outerjoin(
                job,
                # version 1 is the job's enqueued event (the lifecycle allows nothing else);
                # joining on exactly the unique (job_id, version) index keeps plans stable
                sa.and_(job.c.job_id == event.c.job_id, job.c.version == 1),
            )
        )
        .where(event.c.position > after)
        .order_by(event.c.position)
        .limit(limit)
    )
    for column, value in (
        (job.c.user_id, filters.user_id),
        (job.c.place_id, filters.place_id),
        (job.c.mission_id, filters.mission_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.from_time is not None:
        query = query.where(event.c.occurred_at >= to_utc(filters.from_time))
    if filters.to_time is not None:
        query = query.where(event.c.occurred_at < to_utc(filters.to_time))
    if filters.types:
        query = query.where(event.c.type.in_([t.value for t in filters.types]))
    return query


def fetch_events(
    engine: Engine, filters: EventFilters, *, after: int = 0, limit: int = 100
) -> list[AuditEvent]:
    """One page (for an API): at most ``limit`` matching events after position ``after``."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    with (
        translate_errors(),
        engine.connect() as conn,
        conn.execution_options(**{READ_ONLY: True}).begin(),
    ):
        return [_to_audit_event(row) for row in conn.execute(events_query(filters, after, limit))]


def iter_events(
    engine: Engine,
    filters: EventFilters,
    *,
    after: int = 0,
    limit: int | None = None,
    page_size: int = 1000,
) -> Iterator[AuditEvent]:
    """Stream matching events after ``after`` in position order, a page per transaction.

    ``limit`` caps the total (``None``: all). Memory holds one page.
    """
    remaining = limit
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page = fetch_events(engine, filters, after=after, limit=size)
        yield from page
        if len(page) < size:
            return
        after = page[-1].position
        if remaining is not None:
            remaining -= len(page)


def _to_audit_event(row: Row[Any]) -> AuditEvent:
    # unpacked by position (the select's column order): attribute access per field is slow
    values: tuple[Any, ...] = tuple(row)
    (position, occurred_at, job_id, version, event_type, actor, data) = values[:7]
    (prev_hash, digest, job_key, user_id, place_id, mission_id, job_data) = values[7:]
    amount, currency = _money(job_data)
    return AuditEvent(
        position=position,
        occurred_at=to_utc(occurred_at),
        job_id=job_id,
        version=version,
        type=event_type,
        actor=actor,
        idempotency_key=job_key,
        user_id=user_id,
        place_id=place_id,
        mission_id=mission_id,
        amount=amount,
        currency=currency,
        data=orjson.loads(data),
        data_json=data,
        prev_hash=prev_hash,
        hash=digest,
    )


def _money(job_data: str | None) -> tuple[int | None, str | None]:
    """Amount and currency of the job's request (``None`` if its enqueued row is gone)."""
    if job_data is None:
        return None, None
    request = orjson.loads(job_data).get("request", {})
    amount = request.get("amount")
    return (amount if isinstance(amount, int) else None), request.get("currency")


__all__: Sequence[str] = [
    "COLUMNS",
    "AuditEvent",
    "EventFilters",
    "events_query",
    "fetch_events",
    "iter_events",
]
