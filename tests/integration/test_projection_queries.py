"""Reading the projections (what the CLI and HTTP API answer), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.db import create_engine
from ledger.errors import InvalidRequest, JobNotFound, SchemaNotReady
from ledger.events import EventType, NewEvent
from ledger.store import EventStore
from projections import queries, reconcile
from projections.history import history as job_history
from projections.runner import Projector, replay
from projections.schema import LIVE, SCRATCH
from tests.backends import postgres_schema
from tests.factories import request
from tests.projection_logs import append_plan, seeded_plan

E = EventType


def enqueue(store: EventStore, key: str, **fields: object) -> str:
    return store.enqueue(request(idempotency_key=key, **fields), max_attempts=2).job_id


def attempt(store: EventStore, job_id: str, version: int, n: int = 1) -> None:
    store.append(job_id, version, [NewEvent(E.ATTEMPTED, {"attempt": n}, f"worker-{n}")])


def dead_letter(store: EventStore, job_id: str, reason: str) -> None:
    attempt(store, job_id, 1)
    store.append(
        job_id,
        2,
        [
            NewEvent(E.FAILED, {"attempt": 1, "reason": reason, "retryable": False}, "worker-1"),
            NewEvent(E.DEAD_LETTERED, {"attempt": 1, "reason": "not retryable"}, "worker-1"),
        ],
    )


def complete(store: EventStore, job_id: str) -> None:
    attempt(store, job_id, 1)
    store.append(job_id, 2, [NewEvent(E.COMPLETED, {"attempt": 1}, "worker-1")])


def test_stats_counts_amounts_and_delayed_at_query_time(store: EventStore, engine: Engine) -> None:
    enqueue(store, "a", amount=100, currency="USD")
    later = store.enqueue(
        request(idempotency_key="b", amount=5_000), max_attempts=1, delay=timedelta(hours=1)
    )
    complete(store, enqueue(store, "c", amount=7_000))
    dead_letter(store, enqueue(store, "d", amount=300), "card declined")
    attempt(store, enqueue(store, "e", amount=1), 1)
    Projector(store).catch_up()
    assert later.event is not None
    now = later.event.occurred_at
    stats = queries.stats(engine, now).as_api()["stats"]
    assert {k: stats[k] for k in ("waiting", "delayed", "processing", "dlq", "completed")} == {
        "waiting": 1,
        "delayed": 1,
        "processing": 1,
        "dlq": 1,
        "completed": 1,
    }
    assert stats["total"] == 5
    assert stats["amounts"]["USD"]["waiting"] == 100
    assert stats["amounts"]["KRW"] == {
        "waiting": 0,
        "delayed": 5_000,
        "processing": 1,
        "submitted": 0,
        "failed": 0,
        "dlq": 300,
        "completed": 7_000,
        "cancelled": 0,
        "enqueued": 12_301,
        "paid": 7_000,
        "reversed": 0,
        "refunded": 0,
        "net": 7_000,
        "overdue": 0,
    }
    after = queries.stats(engine, now + timedelta(hours=2)).as_api()["stats"]
    assert (after["waiting"], after["delayed"]) == (2, 0)
    assert all(b.balanced for b in reconcile.conservation(engine, now))


def test_dlq_pages_newest_first(store: EventStore, engine: Engine) -> None:
    jobs = [enqueue(store, f"k{n}", user_id=f"u{n}") for n in range(5)]
    for n, job_id in enumerate(jobs):
        dead_letter(store, job_id, f"reason {n}")
    Projector(store).catch_up()
    page = queries.dlq_page(engine, 1, 2)
    api = page.as_api()
    assert api["count"] == 5 and api["range"] == {"start": 1, "end": 2}
    assert [job["id"] for job in api["jobs"]] == [jobs[3], jobs[2]]
    first = api["jobs"][0]
    assert first["failedReason"] == "reason 3"
    assert first["attempts"] == 1
    assert first["data"]["userId"] == "u3" and first["data"]["amount"] == 10_000
    assert first["data"]["currency"] == "KRW" and first["data"]["idempotencyKey"] == "k3"
    assert first["data"]["metadata"] == {"qr_token": "qr-abc", "receipt_id": "r-1"}
    assert isinstance(first["createdAt"], int) and first["createdAt"] <= first["deadLetteredAt"]
    assert len(queries.dlq_page(engine, 0, -1).jobs) == 5
    assert queries.dlq_page(engine, 10, 20).jobs == []
    # requeued from the DLQ: it leaves the view
    store.append(jobs[4], 4, [NewEvent(E.REQUEUED, {"due_at": None, "source": "dlq"}, "op")])
    Projector(store).catch_up()
    assert [e.job_id for e in queries.dlq_page(engine).jobs] == jobs[3::-1]


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (3, 2), (0, -2)])
def test_a_bad_dlq_range_is_refused(engine: Engine, start: int, end: int) -> None:
    with pytest.raises(InvalidRequest):
        queries.dlq_page(engine, start, end)


def test_job_and_idempotency_lookups(store: EventStore, engine: Engine) -> None:
    job_id = enqueue(store, "key-x")
    attempt(store, job_id, 1)
    Projector(store).catch_up()
    record = queries.job(engine, job_id)
    assert record is not None
    assert record.job.status.value == "processing" and record.job.worker == "worker-1"
    assert record.position == 2
    entry = queries.idempotency(engine, "key-x")
    assert entry is not None
    assert (entry.job_id, entry.state) == (job_id, "processing")
    assert entry.fingerprint == request(idempotency_key="key-x").fingerprint()
    assert queries.job(engine, "nope") is None
    assert queries.idempotency(engine, "nope") is None


def test_an_as_of_replay_knows_only_the_keys_it_folded(store: EventStore, engine: Engine) -> None:
    before = enqueue(store, "before")
    position = store.head().position
    enqueue(store, "after")
    Projector(store).catch_up()
    assert replay(store, until_position=position) == position
    known = queries.idempotency(engine, "before", tables=SCRATCH)
    assert known is not None and (known.job_id, known.state) == (before, "waiting")
    assert queries.idempotency(engine, "after", tables=SCRATCH) is None
    assert queries.idempotency(engine, "after") is not None


def test_settled_totals_group_by_day_user_place_mission(store: EventStore, engine: Engine) -> None:
    for n, (user, currency) in enumerate(
        [("u1", "KRW"), ("u1", "KRW"), ("u2", "KRW"), ("u1", "USD")]
    ):
        complete(store, enqueue(store, f"k{n}", user_id=user, currency=currency, amount=100 + n))
    enqueue(store, "not-completed", user_id="u1")
    Projector(store).catch_up()
    by_user = queries.totals(engine, group_by=["user_id"])
    assert [(r.currency, r.group, r.jobs, r.amount) for r in by_user] == [
        ("KRW", {"user_id": "u1"}, 2, 201),
        ("KRW", {"user_id": "u2"}, 1, 102),
        ("USD", {"user_id": "u1"}, 1, 103),
    ]
    today = datetime.now(UTC).date()
    (krw,) = queries.totals(engine, start=today, end=today, group_by=["day"], currency="KRW")
    assert (krw.group, krw.amount) == ({"day": today}, 303)
    assert queries.totals(engine, start=today + timedelta(days=1)) == []
    with pytest.raises(InvalidRequest):
        queries.totals(engine, group_by=["amount"])


def test_totals_per_day_come_from_daily_totals_and_match_the_finest_grain(
    store: EventStore, engine: Engine
) -> None:
    append_plan(store, seeded_plan(5, 60))
    Projector(store, batch_size=7).catch_up()
    by_day = queries.totals(engine, group_by=("day",))
    assert by_day  # the plan completes jobs
    # the same sums from the completed jobs (grouped finer, added up here)
    finer: dict[tuple[str, object], tuple[int, int]] = {}
    for row in queries.totals(engine, group_by=("day", "user_id")):
        key = (row.currency, row.group["day"])
        jobs, amount = finer.get(key, (0, 0))
        finer[key] = (jobs + row.jobs, amount + row.amount)
    assert {(r.currency, r.group["day"]): (r.jobs, r.amount) for r in by_day} == finer
    per_currency = queries.totals(engine, group_by=())
    assert sum(r.amount for r in per_currency) == sum(r.amount for r in by_day)
    # the query reads the per-day table: emptying it empties the answer
    with engine.begin() as conn:
        conn.execute(sa.delete(LIVE.daily_totals))
    assert queries.totals(engine, group_by=("day",)) == []
    assert queries.totals(engine, group_by=("day", "user_id")) != []


def test_finer_totals_sum_completed_jobs_on_the_utc_day_they_settled(engine: Engine) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    now = [day]
    store = EventStore(engine, clock=lambda: now[0])
    settled = {  # in time order: the log's clock never runs back
        # 08:00 the next day in Seoul: it settled on the UTC day, not the local one
        "offset": (day + timedelta(hours=23)).astimezone(timezone(timedelta(hours=9))),
        "last-moment": day + timedelta(days=1) - timedelta(microseconds=1),
        "next-day": day + timedelta(days=1),
    }
    for n, (key, moment) in enumerate(settled.items()):
        now[0] = day
        job_id = enqueue(store, key, user_id=f"u{n % 2}", amount=100 * (n + 1))
        now[0] = moment
        complete(store, job_id)
    enqueue(store, "never-settled", user_id="u0")
    Projector(store).catch_up()

    def grouped(**filters: object) -> list[tuple[object, ...]]:
        rows = queries.totals(engine, group_by=("day", "user_id"), **filters)  # type: ignore[arg-type]
        return [(r.group["day"], r.group["user_id"], r.jobs, r.amount) for r in rows]

    first, second = day.date(), day.date() + timedelta(days=1)
    on_first = [(first, "u0", 1, 100), (first, "u1", 1, 200)]
    assert grouped() == [*on_first, (second, "u0", 1, 300)]
    assert grouped(start=first, end=first) == on_first
    assert grouped(start=second) == [(second, "u0", 1, 300)]
    assert grouped(end=first - timedelta(days=1)) == []
    assert grouped(end=date.max) == grouped()  # the last day has no day after it
    # the per-day table and the sums over the jobs agree day by day
    per_day = queries.totals(engine, group_by=("day",))
    assert [(r.group["day"], r.jobs, r.amount) for r in per_day] == [
        (first, 2, 300),
        (second, 1, 300),
    ]


def test_history_reads_the_log(store: EventStore) -> None:
    job_id = enqueue(store, "h")
    dead_letter(store, job_id, "boom")
    found = job_history(store, job_id).as_api()
    assert found["jobId"] == job_id and found["state"] == "dead"
    assert [e["type"] for e in found["events"]] == [
        "enqueued",
        "attempted",
        "failed",
        "dead_lettered",
    ]
    assert found["events"][2]["data"]["reason"] == "boom"
    assert set(found["events"][0]) == {"position", "version", "type", "data", "occurredAt", "actor"}
    with pytest.raises(JobNotFound):
        job_history(store, "no-such-job")


def test_check_finds_tampered_live_rows(store: EventStore, engine: Engine) -> None:
    append_plan(store, seeded_plan(4, 20))
    Projector(store).catch_up()
    assert reconcile.check(store).ok
    with engine.begin() as conn:
        victim = conn.execute(sa.select(LIVE.job_state.c.job_id).limit(1)).scalar_one()
        conn.execute(
            sa.update(LIVE.job_state).where(LIVE.job_state.c.job_id == victim).values(amount=1)
        )
        conn.execute(
            sa.update(LIVE.queue_stats)
            .where(LIVE.queue_stats.c.bucket == "enqueued")
            .values(amount=LIVE.queue_stats.c.amount + 5)
        )
    report = reconcile.check(store)
    assert not report.ok
    assert report.difference_count >= 3  # the job row twice (one per side), a stats row per side
    assert any(
        d.table == "job_state" and d.side == "live" and d.row["amount"] == 1
        for d in report.differences
    )
    assert any("not conserved" in line and line.startswith("live") for line in report.problems())
    assert all(b.balanced for b in report.replayed)
    assert queries.checkpoint(engine, SCRATCH) == report.position


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with postgres_schema() as url:
        migrate.upgrade(url, "0001_events")  # the log, but no projection tables yet
        yield url


def test_an_unmigrated_database_says_run_init(unmigrated_url: str) -> None:
    engine = create_engine(unmigrated_url)
    try:
        with pytest.raises(SchemaNotReady):
            queries.stats(engine, datetime.now(UTC))
        with pytest.raises(SchemaNotReady):
            Projector(EventStore(engine)).catch_up()
    finally:
        engine.dispose()


def test_history_shows_a_waiting_job_due_later_as_delayed(store: EventStore) -> None:
    result = store.enqueue(
        request(idempotency_key="later"), max_attempts=1, delay=timedelta(hours=1)
    )
    assert result.event is not None
    at = result.event.occurred_at
    assert job_history(store, result.job_id, at).state == "delayed"
    assert job_history(store, result.job_id, at + timedelta(hours=2)).state == "waiting"


def test_totals_per_business_day_follow_the_business_time_zone(engine: Engine) -> None:
    """A Korean platform's day closes at 15:00 UTC: totals per day follow Asia/Seoul."""
    seoul = ZoneInfo("Asia/Seoul")
    day = datetime(2026, 3, 1, tzinfo=UTC)
    now = [day]
    store = EventStore(engine, clock=lambda: now[0])
    settled = {  # UTC instants, in time order
        "mar-1-seoul": day + timedelta(hours=10),  # 19:00 on 1 March in Seoul
        "mar-2-seoul": day + timedelta(hours=15),  # 00:00 on 2 March in Seoul, still 1 March UTC
        "mar-2-late": day + timedelta(hours=30),  # 15:00 on 2 March in Seoul
    }
    for n, (key, moment) in enumerate(settled.items()):
        now[0] = moment
        complete(store, enqueue(store, key, amount=100 * (n + 1)))
    Projector(store).catch_up()

    def by_day(**options: object) -> list[tuple[object, int, int]]:
        rows = queries.totals(engine, group_by=("day",), **options)  # type: ignore[arg-type]
        return [(r.group["day"], r.jobs, r.amount) for r in rows]

    first, second = date(2026, 3, 1), date(2026, 3, 2)
    assert by_day() == [(first, 2, 300), (second, 1, 300)]  # UTC days
    assert by_day(zone=seoul) == [(first, 1, 100), (second, 2, 500)]
    assert by_day(zone=seoul, start=second, end=second) == [(second, 2, 500)]
    assert by_day(zone=ZoneInfo("UTC")) == by_day()
