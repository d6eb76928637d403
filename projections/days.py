"""Days of stored times in SQL: a time's UTC or local day, and the instant a day starts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ledger.business_time import day_start


def midnight(day: date, zone: ZoneInfo | None = None) -> datetime:
    """The instant a day starts (UTC by default), in UTC."""
    if zone is None:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return day_start(day, zone)


def local_day(
    moment: sa.ColumnElement[Any], dialect: str, zone: ZoneInfo
) -> sa.ColumnElement[date]:
    """The day of a stored time in ``zone`` (SQLite: the function ``ledger.db`` registers)."""
    if dialect == "sqlite":
        return sa.type_coerce(sa.func.ledger_local_day(moment, zone.key), sa.Date)
    return sa.cast(sa.func.timezone(zone.key, moment), sa.Date)


def utc_day(moment: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[date]:
    """The UTC day of a stored time, as the fold's ``daily_totals`` days it."""
    if dialect == "sqlite":
        # SQLite keeps times as UTC text; ``date()`` cuts the day off it
        return sa.type_coerce(sa.func.date(moment), sa.Date)
    return sa.cast(sa.func.timezone("UTC", moment), sa.Date)
