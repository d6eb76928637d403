"""Business days: the time zone a platform closes its days and months in.

``LEDGER_BUSINESS_TIMEZONE`` (default ``UTC``; a Korean platform closes its
month in ``Asia/Seoul``) says what "the 31st" or "March" means to an auditor:
reconcile periods, the as-of helpers and the days a person types on the
command line. The log itself keeps UTC instants. Pure: no IO.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.errors import InvalidRequest
from ledger.events import to_utc

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def business_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``ValueError`` when there is no such zone)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, Asia/Seoul)") from None


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC."""
    return to_utc(datetime.combine(day, time(0), tzinfo=zone))


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """The last instant (microsecond) of ``day`` in ``zone``, in UTC."""
    return day_start(day + timedelta(days=1), zone) - timedelta(microseconds=1)


def business_day(moment: datetime, zone: ZoneInfo) -> date:
    """The business day an instant falls on."""
    return to_utc(moment).astimezone(zone).date()


def parse_moment(text: str, option: str, zone: ZoneInfo, *, end_of_day: bool) -> datetime:
    """An instant a person typed, in UTC, or ``InvalidRequest`` (exit 2).

    ``2026-03-31`` is a business day: its first instant, or its last with
    ``end_of_day`` (the end of a period, "as of the 31st"). A time without an
    offset is business time; ``Z`` or an offset says which instant it is.
    """
    stripped = text.strip()
    try:
        if _DATE.fullmatch(stripped):
            day = date.fromisoformat(stripped)
            return day_end(day, zone) if end_of_day else day_start(day, zone)
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"invalid {option}: {text!r} is not an ISO 8601 date or time "
            "(e.g. 2026-01-31 or 2026-01-31T23:59:59Z)",
            field=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return to_utc(moment)
