"""The event filters of ``Connection.events`` and the page query behind them.

A page is one keyset query (``position > after ORDER BY position LIMIT n``)
in its own short read transaction, so memory holds one page and no
transaction stays open while the script works. Who/where/what (user, place,
mission) are set only on a job's ``enqueued`` row (version 1), so those
filters ask whether the job's first event matches (the ``(job_id, version)``
index answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ledger.errors import InvalidFilter, InvalidRequest, NaiveTime
from ledger.events import EventType
from ledger.log_reader import EVENT_COLUMNS, EVENT_TYPES
from ledger.schema import events as events_table

#: ``Connection.events``'s filters, by keyword
FILTERS = ("after", "since", "until", "type", "job", "user", "place", "mission", "page_size")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Validated filters: every set field must match (``since`` inclusive, ``until`` not)."""

    since: datetime | None = None
    until: datetime | None = None
    types: tuple[EventType, ...] = ()
    job: str | None = None
    user: str | None = None
    place: str | None = None
    mission: str | None = None

    def page(self, after: int, size: int, until_position: int | None = None) -> sa.Select[Any]:
        """The SQL for the next page after ``after``."""
        table = events_table
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(table.c.position > after)
            .order_by(table.c.position)
            .limit(size)
        )
        if until_position is not None:
            query = query.where(table.c.position <= until_position)
        if self.job is not None:
            query = query.where(table.c.job_id == self.job)
        if self.types:
            query = query.where(table.c.type.in_([kind.value for kind in self.types]))
        if self.since is not None:
            query = query.where(table.c.occurred_at >= self.since)
        if self.until is not None:
            query = query.where(table.c.occurred_at < self.until)
        return self._who(query)

    def _who(self, query: sa.Select[Any]) -> sa.Select[Any]:
        wanted = [
            (column, value)
            for column, value in (
                ("user_id", self.user),
                ("place_id", self.place),
                ("mission_id", self.mission),
            )
            if value is not None
        ]
        if not wanted:
            return query
        first = events_table.alias("first")
        return query.where(
            sa.exists().where(
                first.c.job_id == events_table.c.job_id,
                first.c.version == 1,
                *(first.c[column] == value for column, value in wanted),
            )
        )


def event_query(
    *,
    since: datetime | None,
    until: datetime | None,
    type: EventType | str | Iterable[EventType | str] | None,
    job: str | None,
    user: str | None,
    place: str | None,
    mission: str | None,
    unknown: Mapping[str, object],
) -> EventQuery:
    """Check the filters a script passed; ``InvalidFilter``/``NaiveTime`` say what is wrong."""
    if unknown:
        raise InvalidFilter(
            f"unknown filter(s) {sorted(unknown)}: the log is read by {list(FILTERS)}",
            field=sorted(unknown)[0],
        )
    for name, value in (("job", job), ("user", user), ("place", place), ("mission", mission)):
        if value is not None and not isinstance(value, str):
            raise InvalidFilter(f"{name} must be a string, not {value!r}", field=name)
    since_utc, until_utc = aware(since, "since"), aware(until, "until")
    if since_utc is not None and until_utc is not None and until_utc < since_utc:
        raise InvalidRequest("until is before since", field="until")
    return EventQuery(since_utc, until_utc, event_types(type), job, user, place, mission)


def aware(moment: datetime | None, name: str) -> datetime | None:
    """``moment`` in UTC; ``NaiveTime`` when it has no zone (the log cannot guess one)."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidFilter(f"{name} must be a datetime, not {moment!r}", field=name)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveTime(name)
    return moment.astimezone(UTC)


def event_types(
    value: EventType | str | Iterable[EventType | str] | None,
) -> tuple[EventType, ...]:
    """One type or several, as members of ``EventType`` (a name the log has not is refused)."""
    if value is None:
        return ()
    items: Iterable[EventType | str] = [value] if isinstance(value, str) else value
    found: list[EventType] = []
    for item in items:
        member = EVENT_TYPES.get(str(item))
        if member is None:
            raise InvalidFilter(
                f"unknown event type {item!r}: the log has {sorted(EVENT_TYPES)}", field="type"
            )
        found.append(member)
    return tuple(dict.fromkeys(found))
