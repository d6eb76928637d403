"""The time text ``verify`` gets from the database is ``format_time``'s, byte for byte.

The hash covers ``format_time(occurred_at)``. ``verify`` has the database write
that text (``to_char`` on PostgreSQL, a re-cut of SQLite's stored text), so these
tests stamp events at awkward instants and compare, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.audit.chain import RowReader
from ledger.audit.verify import ProblemKind, verify_log
from ledger.events import format_time
from ledger.schema import events
from ledger.store import EventStore
from tests.audit_support import Attacker
from tests.factories import request

EDGES = [
    datetime(1, 1, 1, tzinfo=UTC),  # the first instant a datetime holds
    datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # format_time's year is unpadded
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, 0, 500_000, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no microseconds: still six zeros
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 10, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 100_000, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, 0, 999_999, tzinfo=UTC),  # a summer-time change in Europe
    datetime(2026, 10, 25, 0, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # the last one
]


def random_instants(count: int, seed: int = 11) -> list[datetime]:
    rng = random.Random(seed)
    start, span = datetime(1000, 1, 1, tzinfo=UTC), 9000 * 365 * 86_400 * 10**6
    return [start + timedelta(microseconds=rng.randrange(span)) for _ in range(count)]


def stamped_log(engine: Engine, moments: list[datetime]) -> None:
    """One enqueued job per instant, appended in time order with an injected clock."""
    clock: Iterator[datetime] = iter(sorted(moments))
    store = EventStore(engine, clock=lambda: next(clock))
    for index in range(len(moments)):
        store.enqueue(request(idempotency_key=f"time-{index}"), max_attempts=1)


def stored_times(engine: Engine) -> list[str]:
    """``format_time`` of each row's time as the ORM reads it: what the hash covers."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.occurred_at).order_by(events.c.position))
        return [format_time(moment) for (moment,) in rows]


def page_times(engine: Engine) -> list[str | None]:
    reader = RowReader(engine)
    return [reader.row(values).occurred_at for page in reader.pages(0, 10**9) for values in page]


def test_edge_instants_read_as_format_time_writes_them(engine: Engine) -> None:
    stamped_log(engine, EDGES)
    assert page_times(engine) == stored_times(engine) == [format_time(m) for m in EDGES]
    assert verify_log(engine).ok
    assert verify_log(engine, workers=2, page_size=3).ok


def test_random_instants_read_as_format_time_writes_them(engine: Engine) -> None:
    moments = random_instants(300)
    stamped_log(engine, moments)
    assert page_times(engine) == [format_time(m) for m in sorted(moments)]
    assert verify_log(engine).ok


def stored_form(moment: datetime) -> str:
    """SQLite's stored text of an instant (zero-padded year): what ``scan`` gives everywhere."""
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d} "
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}"
    )


def scan_times(engine: Engine) -> list[str]:
    return [row[5] for page in EventStore(engine).scan() for row in page]


def test_scan_reads_every_instant_as_utc_text_in_the_stored_form(engine: Engine) -> None:
    moments = EDGES + random_instants(100)
    stamped_log(engine, moments)
    assert scan_times(engine) == [stored_form(m) for m in sorted(moments)]


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_the_session_time_zone_does_not_matter(db_url: str) -> None:
    """PostgreSQL formats in UTC whatever the session's TimeZone (SQLite has none)."""
    url = sa.engine.make_url(db_url)
    options = f"{url.query.get('options', '')} -cTimeZone=Asia/Seoul".strip()
    seoul = sa.create_engine(url.update_query_dict({"options": options}))
    try:
        stamped_log(seoul, EDGES[3:])
        with seoul.connect() as conn:
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "Asia/Seoul"
        assert page_times(seoul) == [format_time(m) for m in EDGES[3:]]
        assert scan_times(seoul) == [stored_form(m) for m in EDGES[3:]]
        assert verify_log(seoul).ok
    finally:
        seoul.dispose()


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01 00:00:00",  # no fraction
        "2026-01-01T00:00:00.000000",  # another separator
        "2026-01-01 00:00:00.000000+00:00",  # an offset
    ],
)
def test_sqlite_text_in_another_format_is_read_as_the_orm_reads_it(
    engine: Engine, text: str
) -> None:
    """Not written by the ledger; if it ever is, the slow way gives the ORM's reading."""
    stamped_log(engine, [datetime(2026, 1, 1, tzinfo=UTC)])
    Attacker(engine).disable_triggers()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE events SET occurred_at = ? WHERE position = 1", (text,))
    assert page_times(engine) == stored_times(engine) == ["2026-01-01T00:00:00.000000Z"]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("text", ["not a time", "2026-02-30 00:00:00.000000", "12345"])
def test_an_unreadable_sqlite_time_is_modified(engine: Engine, text: str) -> None:
    """PostgreSQL refuses such values itself; SQLite text can be anything."""
    stamped_log(engine, [datetime(2026, 1, 1, tzinfo=UTC)] * 3)
    Attacker(engine).disable_triggers()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE events SET occurred_at = ? WHERE position = 2", (text,))
    problem = verify_log(engine).problem
    assert problem is not None
    assert (problem.position, problem.kind) == (2, ProblemKind.MODIFIED)
