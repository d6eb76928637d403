"""Workloads on the event log that exist now: append, enqueue, read, and the physical floor.

* ``append_single``: one event per transaction (``EventStore.append``).
* ``append_batched``: 100 events per transaction (``EventStore.append_many``).
* ``store_enqueue``: ``EventStore.enqueue`` (idempotency look-up + append; SQL only).
* ``read_all``: ``EventStore.read_all`` over the whole log (replay read rate).
* ``floor_insert`` / ``floor_scan``: the same rows into / out of the same table
  with the driver alone (sqlite3 / psycopg), multi-row ``INSERT … VALUES`` per
  transaction with the same durability settings, and a plain ``SELECT`` scan.
* ``floor_copy``: the same rows with psycopg's ``COPY`` (PostgreSQL), the path
  the store itself takes there.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.common import Measure, rate
from bench.generate import enqueued, request_record
from ledger.append_sql import COLUMNS, PG_COPY, PG_COPY_TYPES
from ledger.db import create_engine
from ledger.request import SettlementRequest
from ledger.store import EventStore, StreamAppend


def _streams(n: int, seed: int) -> list[StreamAppend]:
    rng = random.Random(seed)
    return [
        StreamAppend(str(uuid.uuid4()), 0, [enqueued(request_record(rng, index))])
        for index in range(n)
    ]


@contextmanager
def _store(url: str) -> Iterator[EventStore]:
    engine = create_engine(url)
    try:
        yield EventStore(engine)
    finally:
        engine.dispose()


def append_single(url: str, n: int) -> Measure:
    streams = _streams(n, seed=1)
    with _store(url) as store:
        started = time.perf_counter()
        for item in streams:
            store.append(item.job_id, 0, item.events)
        seconds = time.perf_counter() - started
    return {"events_per_s": rate(n, seconds)}


def append_batched(url: str, n: int, batch: int = 100) -> Measure:
    streams = _streams(n, seed=2)
    with _store(url) as store:
        started = time.perf_counter()
        for start in range(0, n, batch):
            store.append_many(streams[start : start + batch])
        seconds = time.perf_counter() - started
    return {"events_per_s": rate(n, seconds)}


def store_enqueue(url: str, n: int) -> Measure:
    rng = random.Random(3)
    requests = [SettlementRequest(**request_record(rng, index)) for index in range(n)]
    with _store(url) as store:
        started = time.perf_counter()
        for request in requests:
            store.enqueue(request, max_attempts=3)
        seconds = time.perf_counter() - started
    return {"jobs_per_s": rate(n, seconds)}


def read_all(url: str) -> Measure:
    with _store(url) as store:
        started = time.perf_counter()
        count = sum(1 for _ in store.read_all())
        seconds = time.perf_counter() - started
    return {"events_per_s": rate(count, seconds), "events": float(count)}


# -- the physical floor: the driver alone --------------------------------------


@contextmanager
def raw_connection(url: str) -> Iterator[Any]:
    """A DB-API connection to the ledger database, with the ledger's durability settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(parsed.database), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        try:
            yield conn
        finally:
            conn.close()
        return
    import psycopg

    options = parsed.query.get("options")
    conn = psycopg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        dbname=parsed.database,
        options=options if isinstance(options, str) else "",
    )
    try:
        yield conn
    finally:
        conn.close()


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def dump_rows(url: str) -> list[tuple[Any, ...]]:
    """Every row of the events table, as the driver returns it."""
    with raw_connection(url) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY position")
        rows = [tuple(row) for row in cur.fetchall()]
        if not is_sqlite_url(url):
            conn.rollback()
        return rows


def floor_insert(url: str, rows: Sequence[tuple[Any, ...]], batch: int) -> Measure:
    """Multi-row ``INSERT … VALUES`` of ``batch`` rows per transaction, driver only."""
    sqlite = is_sqlite_url(url)
    mark = "?" if sqlite else "%s"
    one = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
    head = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
    full_sql = head + ", ".join([one] * batch)
    with raw_connection(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            sql = full_sql if len(chunk) == batch else head + ", ".join([one] * len(chunk))
            params = [value for row in chunk for value in row]
            if sqlite:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, params)
                conn.execute("COMMIT")
            else:
                conn.execute(sql, params)
                conn.commit()
        seconds = time.perf_counter() - started
    return {"events_per_s": rate(len(rows), seconds)}


def floor_copy(url: str, rows: Sequence[tuple[Any, ...]], batch: int) -> Measure:
    """PostgreSQL only: binary ``COPY … FROM STDIN`` of ``batch`` rows per transaction.

    The store appends with a binary ``COPY`` on PostgreSQL (less client CPU than
    a multi-row ``INSERT`` or a text ``COPY``), so this is its own path's floor.
    """
    with raw_connection(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            with conn.cursor().copy(PG_COPY) as copy:
                copy.set_types(PG_COPY_TYPES)
                for row in rows[start : start + batch]:
                    copy.write_row(row)
            conn.commit()
        seconds = time.perf_counter() - started
    return {"events_per_s": rate(len(rows), seconds)}


def floor_scan(url: str) -> Measure:
    """``SELECT`` every column of every row in position order, driver only."""
    with raw_connection(url) as conn:
        started = time.perf_counter()
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY position")
        count = 0
        while chunk := cur.fetchmany(5000):
            count += len(chunk)
        seconds = time.perf_counter() - started
        if not is_sqlite_url(url):
            conn.rollback()
    return {"events_per_s": rate(count, seconds), "events": float(count)}


def sqlite_path(url: str) -> Path:
    return Path(str(make_url(url).database))
