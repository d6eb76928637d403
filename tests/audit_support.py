"""Logs for the audit tests, a check of the hash chain, and an attacker with the owner's rights
on the events table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.events import GENESIS_HASH, EventType, NewEvent, event_hash
from ledger.request import canonical_json, fingerprint_of
from ledger.schema import events
from ledger.store import EventStore
from tests.factories import request

CURRENCIES = ("KRW", "USD", "JPY")


def assert_chain(store: EventStore) -> str:
    """Every event links to the one before it and seals its own content; returns the last hash."""
    prev = GENESIS_HASH
    for event in store.read_all():
        assert event.prev_hash == prev
        assert event.hash == event_hash(
            prev_hash=prev,
            position=event.position,
            job_id=event.job_id,
            version=event.version,
            event_type=event.type.value,
            data_json=canonical_json(event.data).decode(),
            occurred_at=event.occurred_at,
            actor=event.actor,
            idempotency_key=event.idempotency_key,
        )
        prev = event.hash
    return prev


def build_log(store: EventStore, jobs: int = 6) -> list[str]:
    """Jobs in every lifecycle shape; returns the job ids (job i has key ``key-i``).

    Shapes by ``i % 4``: completed first time; failed, retried, completed;
    dead-lettered then requeued and left waiting; left processing.
    """
    job_ids = []
    for i in range(jobs):
        result = store.enqueue(
            request(
                idempotency_key=f"key-{i}",
                user_id=f"user-{i % 3}",
                place_id=f"place-{i % 2}",
                mission_id=f"mission-{i}",
                amount=1000 + i,
                currency=CURRENCIES[i % len(CURRENCIES)],
                metadata={"qr_token": f"토큰-{i} ✓", "receipt_id": f"r-{i}", "n": [i, None]},
            ),
            max_attempts=2,
        )
        job_ids.append(result.job_id)
    for i, job_id in enumerate(job_ids):
        store.append(job_id, 1, _shape(i % 4))
    return job_ids


def _shape(kind: int) -> list[NewEvent]:
    attempt = NewEvent(EventType.ATTEMPTED, {"attempt": 1, "lease_until": None}, "worker-1")
    if kind == 0:
        return [attempt, NewEvent(EventType.COMPLETED, {"attempt": 1}, "worker-1")]
    failed = NewEvent(EventType.FAILED, {"attempt": 1, "reason": "boom", "retryable": True})
    if kind == 1:
        retry = NewEvent(EventType.REQUEUED, {"due_at": None, "reason": "retry", "source": "retry"})
        again = NewEvent(EventType.ATTEMPTED, {"attempt": 2, "lease_until": None}, "worker-2")
        done = NewEvent(EventType.COMPLETED, {"attempt": 2}, "worker-2")
        return [attempt, failed, retry, again, done]
    if kind == 2:
        dead = NewEvent(EventType.DEAD_LETTERED, {"attempt": 1, "reason": "permanent"})
        back = NewEvent(EventType.REQUEUED, {"due_at": None, "reason": "op", "source": "dlq"}, "op")
        return [attempt, failed, dead, back]
    return [attempt]


class Attacker:
    """Someone with the owner's rights: switches the append-only triggers off and edits rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    def disable_triggers(self) -> None:
        with self.engine.begin() as conn:
            if self.sqlite:
                names = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
                ).scalars()
                for name in list(names):
                    conn.exec_driver_sql(f"DROP TRIGGER {name}")
            else:
                conn.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(events).order_by(events.c.position))
            return [dict(row._mapping) for row in result]

    def insert(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(events.insert(), [row])

    def wipe(self) -> None:
        """TRUNCATE on PostgreSQL, DELETE on SQLite (no TRUNCATE there)."""
        self.execute("DELETE FROM events" if self.sqlite else "TRUNCATE events")


def reseal(row: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """The row with ``prev_hash`` and a correctly recomputed hash: a forger's work."""
    digest = event_hash(
        prev_hash=prev_hash,
        position=row["position"],
        job_id=row["job_id"],
        version=row["version"],
        event_type=row["type"],
        data_json=row["data"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        idempotency_key=row["idempotency_key"],
    )
    return {**row, "prev_hash": prev_hash, "hash": digest}


def rewrite_chain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute every hash in order (positions as given), as a whole-log forger would."""
    out, prev = [], GENESIS_HASH
    for row in rows:
        sealed = reseal(row, prev)
        out.append(sealed)
        prev = sealed["hash"]
    return out


def forged_payout(
    after: dict[str, Any] | None,
    when: datetime,
    *,
    amount: int = 500_000_000,
    key: str = "forged-payout",
    job_id: str = "00000000-0000-4000-8000-00000000f0f0",
) -> list[dict[str, Any]]:
    """A chained, lifecycle-legal ``enqueued → attempted → completed`` after the row ``after``.

    Every hash is right and every transition legal: what someone who may only
    INSERT (the app role) could append, dated ``when``.
    """
    record = request(idempotency_key=key, amount=amount, currency="KRW").as_record()
    data = [
        {
            "request": record,
            "fingerprint": fingerprint_of(record),
            "max_attempts": 3,
            "due_at": None,
        },
        {"attempt": 1, "lease_until": None},
        {"attempt": 1},
    ]
    kinds = [EventType.ENQUEUED, EventType.ATTEMPTED, EventType.COMPLETED]
    position = 0 if after is None else int(after["position"])
    prev = GENESIS_HASH if after is None else str(after["hash"])
    rows = []
    for version, (kind, payload) in enumerate(zip(kinds, data, strict=True), start=1):
        enqueued = kind is EventType.ENQUEUED
        row = {
            "position": position + version,
            "job_id": job_id,
            "version": version,
            "type": kind.value,
            "data": canonical_json(payload).decode(),
            "occurred_at": when,
            "actor": "service" if enqueued else "worker-1",
            "idempotency_key": key if enqueued else None,
            "user_id": record["user_id"] if enqueued else None,
            "place_id": record["place_id"] if enqueued else None,
            "mission_id": record["mission_id"] if enqueued else None,
        }
        sealed = reseal(row, prev)
        rows.append(sealed)
        prev = sealed["hash"]
    return rows
