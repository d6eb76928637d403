"""Procrastinate on PostgreSQL: ``task.defer`` per job, ``task.batch_defer`` batched.

Runs in its own fresh schema (search_path), dropped at the end. N separate
``procrastinate worker`` processes (default concurrency 1, LISTEN/NOTIFY on).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from bench.common import Measure, NotAvailable, rate, venv_bin
from bench.jobs import kind_of
from bench.peers.base import PeerContext, drain
from bench.services import libpq_conninfo, postgres_schema

BATCH = 100
DSN_ENV = "BENCH_PROCRASTINATE_DSN"


@contextmanager
def session(ctx: PeerContext) -> Iterator[None]:
    """A schema for the whole run, with procrastinate's tables applied."""
    try:
        import procrastinate  # noqa: F401
    except ImportError as exc:
        raise NotAvailable(f"procrastinate not installed ({exc})") from None
    with postgres_schema("bench_procrastinate") as (schema, _url):
        os.environ[DSN_ENV] = libpq_conninfo(schema)
        tasks = _tasks()
        with tasks.app.open():
            tasks.app.schema_manager.apply_schema()
        yield


def _tasks() -> ModuleType:
    if DSN_ENV not in os.environ:
        raise NotAvailable("procrastinate session not open")
    from bench.peers import procrastinate_tasks

    return procrastinate_tasks


def _reset(tasks: ModuleType) -> None:
    import psycopg

    with psycopg.connect(os.environ[DSN_ENV], autocommit=True) as conn:
        conn.execute("TRUNCATE procrastinate_jobs CASCADE")


def _defer(tasks: ModuleType, n: int, batched: bool, mix: bool) -> float:
    with tasks.app.open():
        started = time.perf_counter()
        if batched:
            for start in range(0, n, BATCH):
                tasks.noop.batch_defer(
                    *(
                        {"index": i, "kind": kind_of(i, retry_mix=mix)}
                        for i in range(start, min(n, start + BATCH))
                    )
                )
        else:
            for index in range(n):
                tasks.noop.defer(index=index, kind=kind_of(index, retry_mix=mix))
        return time.perf_counter() - started


def enqueue(ctx: PeerContext, n: int, batched: bool) -> Measure:
    tasks = _tasks()
    _reset(tasks)
    return {"jobs_per_s": rate(n, _defer(tasks, n, batched, False))}


def run_drain(ctx: PeerContext, n: int, workers: int, retry_mix: bool) -> Measure:
    tasks = _tasks()
    _reset(tasks)

    def enqueue_all(count: int, mix: bool) -> None:
        _defer(tasks, count, True, mix)

    argv = [
        venv_bin("procrastinate"),
        "--app=bench.peers.procrastinate_tasks.app",
        "worker",
    ]
    return drain(
        ctx,
        name="procrastinate",
        n=n,
        retry_mix=retry_mix,
        enqueue_all=enqueue_all,
        worker_argvs=[argv] * workers,
        env={DSN_ENV: os.environ[DSN_ENV]},
    )
