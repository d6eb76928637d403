"""Auditor reads: the event log itself (paged, filtered) and settled totals."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator
from pydantic.alias_generators import to_camel

from ledger.audit.queries import EventFilters, fetch_events
from ledger.events import EventType
from ledger.http.auth import Principal, Role, require
from ledger.http.deps import LogDep, ReadsDep, SettingsDep
from ledger.request import CURRENCIES, IDENTIFIER_DESCRIPTION, MAX_ID_LENGTH, currency_code
from ledger.text import identifier_text
from projections.queries import TotalsAsked

router = APIRouter(prefix="/api", tags=["audit"])

MAX_EVENTS = 1000
#: positions are 64-bit signed integers in both databases
MAX_POSITION = 2**63 - 1

#: the API's group names → the projection's column names
GROUP_COLUMNS = {"day": "day", "user": "user_id", "place": "place_id", "mission": "mission_id"}


def _id_query(alias: str) -> Any:
    return Query(
        alias=alias, min_length=1, max_length=MAX_ID_LENGTH, description=IDENTIFIER_DESCRIPTION
    )


IdFilter = Annotated[str, AfterValidator(identifier_text)]
Currency = Annotated[str, AfterValidator(currency_code)]


@router.get("/events")
def list_events(
    log: LogDep,
    _who: Annotated[Principal, Depends(require(Role.AUDITOR))],
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Return events after this position.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
    user_id: Annotated[IdFilter | None, _id_query("userId")] = None,
    place_id: Annotated[IdFilter | None, _id_query("placeId")] = None,
    mission_id: Annotated[IdFilter | None, _id_query("missionId")] = None,
    from_time: Annotated[datetime | None, Query(alias="from")] = None,
    to_time: Annotated[datetime | None, Query(alias="to")] = None,
    event_type: Annotated[list[EventType] | None, Query(alias="type")] = None,
) -> dict[str, Any]:
    """One page of the log in position order; follow ``nextAfter`` for the next page.

    ``from`` is inclusive, ``to`` exclusive; filters by user/place/mission match
    every event of that user's (place's, mission's) jobs.
    """
    filters = EventFilters(
        user_id=user_id,
        place_id=place_id,
        mission_id=mission_id,
        from_time=from_time,
        to_time=to_time,
        types=tuple(event_type or ()),
    )
    page = fetch_events(log.engine, filters, after=after, limit=limit)
    return {
        "events": [
            {to_camel(key): value for key, value in event.as_record().items()} for event in page
        ],
        "count": len(page),
        "nextAfter": page[-1].position if len(page) == limit else None,
    }


@router.get("/totals")
def settled_totals(
    reads: ReadsDep,
    settings: SettingsDep,
    _who: Annotated[Principal, Depends(require(Role.AUDITOR))],
    from_day: Annotated[
        date | None,
        Query(alias="from", description="Business day (LEDGER_BUSINESS_TIMEZONE), inclusive."),
    ] = None,
    to_day: Annotated[
        date | None,
        Query(alias="to", description="Business day (LEDGER_BUSINESS_TIMEZONE), inclusive."),
    ] = None,
    group_by: Annotated[Literal["day", "user", "place", "mission"], Query(alias="groupBy")] = "day",
    currency: Annotated[
        Currency | None,
        Query(min_length=3, max_length=3, json_schema_extra={"enum": list(CURRENCIES)}),
    ] = None,
) -> dict[str, Any]:
    """Completed (settled) amounts per currency and per day, user, place or mission.

    Days are business days: ``LEDGER_BUSINESS_TIMEZONE`` (default UTC). As of the
    log's head (``asOfPosition``).
    """
    column = GROUP_COLUMNS[group_by]
    asked = TotalsAsked(from_day, to_day, (column,), currency, settings.business_zone)
    found = reads.totals(asked)
    return {
        "groupBy": group_by,
        "from": from_day.isoformat() if from_day else None,
        "to": to_day.isoformat() if to_day else None,
        "totals": [
            {
                "currency": row.currency,
                to_camel(column): _plain(row.group[column]),
                "jobs": row.jobs,
                "amount": row.amount,
            }
            for row in found.rows
        ],
        "asOfPosition": found.position,
    }


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value
