"""Business days: what a typed day or time means in LEDGER_BUSINESS_TIMEZONE."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ledger.business_time import business_day, business_zone, day_end, day_start, parse_moment
from ledger.errors import InvalidRequest
from ledger.money import format_amounts
from ledger.settings import Settings

SEOUL = ZoneInfo("Asia/Seoul")
UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("text", "zone", "end_of_day", "expected"),
    [
        ("2026-03-31", UTC_ZONE, True, datetime(2026, 3, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        ("2026-03-31", UTC_ZONE, False, datetime(2026, 3, 31, tzinfo=UTC)),
        ("2026-03-31", SEOUL, False, datetime(2026, 3, 30, 15, tzinfo=UTC)),
        ("2026-03-31", SEOUL, True, datetime(2026, 3, 31, 14, 59, 59, 999_999, tzinfo=UTC)),
        ("2026-03-31T09:00:00", SEOUL, True, datetime(2026, 3, 31, 0, tzinfo=UTC)),
        ("2026-03-31T09:00:00Z", SEOUL, True, datetime(2026, 3, 31, 9, tzinfo=UTC)),
        ("2026-03-31T09:00:00+09:00", UTC_ZONE, True, datetime(2026, 3, 31, 0, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, zone: ZoneInfo, end_of_day: bool, expected: datetime) -> None:
    assert parse_moment(text, "--as-of", zone, end_of_day=end_of_day) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-02-30", "31/03/2026", ""])
def test_parse_moment_refuses_what_is_not_a_date_or_time(text: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid --from"):
        parse_moment(text, "--from", UTC_ZONE, end_of_day=False)


def test_days_across_a_summer_time_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    change = date(2026, 3, 29)  # 23 hours long in Berlin
    assert day_end(change, berlin) - day_start(change, berlin) < (
        day_end(date(2026, 3, 28), berlin) - day_start(date(2026, 3, 28), berlin)
    )
    assert business_day(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), berlin) == change


def test_the_setting_is_an_iana_zone() -> None:
    assert Settings(business_timezone="Asia/Seoul").business_zone == SEOUL
    assert Settings().business_zone == UTC_ZONE
    with pytest.raises(ValueError, match="IANA time zone"):
        Settings(business_timezone="Mars/Olympus")
    with pytest.raises(ValueError):
        business_zone("not a zone")


def test_amounts_for_people_follow_the_currency_exponent() -> None:
    record = {
        "amount": 151037,
        "currency": "USD",
        "ledger": {"amount": 1000, "currency": "KRW"},
        "statement": {"amount": 5},  # inherits USD
        "jobs": 3,
    }
    assert format_amounts(record) == {
        "amount": "1,510.37 USD",
        "currency": "USD",
        "ledger": {"amount": "1,000 KRW", "currency": "KRW"},
        "statement": {"amount": "0.05 USD"},
        "jobs": 3,
    }
