"""Walk consecutive ranges of the log in parallel processes, for ``verify``.

Recomputing a SHA-256 per event is CPU work; one process does ~1/4 M events/s at
best. The log is cut into ranges of positions; each worker process walks whole
ranges with its own connection (``walker.walk_range``, seeded from the rows just
before its range), and the outcomes come back in position order, so the first
range's findings follow the findings of the ranges before it, exactly as a
single walk would report them (a walk takes a bad row as it stands and goes on,
which is the state a range seeded from the rows before it starts in).

Memory stays bounded: each process holds a page and its open jobs, and at most
``2 * workers`` ranges are in flight. Workers are forked (no re-import, and the
parent's pooled connections are dropped in the child without being closed, as
SQLAlchemy advises for ``os.fork``); where ``fork`` does not exist, or the
database is in memory, the walk stays in one process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ledger.audit.chain import RowReader
from ledger.audit.walker import Progress, RangeOutcome, walk_range
from ledger.db import can_fork, create_engine

#: a worker takes ranges of at most this many positions (progress and balance)
MAX_RANGE = 100_000
#: ranges per worker to aim for (so a slow range does not leave a core idle at the end)
RANGES_PER_WORKER = 8
#: most processes ``default_workers`` picks: past a few readers the one database is the limit
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """One worker per CPU this process may run on, at most ``MAX_DEFAULT_WORKERS``.

    One process cannot use a second core for the walk: the hashing is Python
    under one interpreter lock, and sqlite3 takes that lock back for every row it
    steps. Two processes on the 2-core bench machine checked 1M events 1.7 to 2.1
    times as fast as one, on SQLite and on PostgreSQL (bench/README.md).
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(available or 1, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True, slots=True)
class _Range:
    """One task: walk ``first..last`` of the log at ``url`` (picklable)."""

    url: str
    first: int
    last: int
    from_position: int
    anchors: dict[int, str]
    page_size: int
    max_findings: int


def walk_ranges(
    engine: Engine,
    reader: RowReader,
    *,
    from_position: int,
    until: int,
    anchors: Mapping[int, str],
    page_size: int,
    workers: int,
    max_findings: int,
    on_progress: Progress | None,
) -> Iterator[RangeOutcome]:
    """Outcomes of walking ``from_position..until``, in order (one range, or many in parallel)."""
    span = until - from_position + 1
    if workers < 2 or span < 2 * page_size or not can_fork(engine):
        yield walk_range(
            reader,
            from_position,
            until,
            from_position=from_position,
            anchors=anchors,
            page_size=page_size,
            max_findings=max_findings,
            on_progress=on_progress,
        )
        return
    size = max(page_size, min(MAX_RANGE, -(-span // (workers * RANGES_PER_WORKER))))
    url = engine.url.render_as_string(hide_password=False)
    tasks = (
        _Range(
            url,
            first,
            min(first + size - 1, until),
            from_position,
            {p: h for p, h in anchors.items() if first <= p < first + size},
            page_size,
            max_findings,
        )
        for first in range(from_position, until + 1, size)
    )
    yield from _in_pool(engine, tasks, workers, on_progress)


def _in_pool(
    engine: Engine, tasks: Iterator[_Range], workers: int, on_progress: Progress | None
) -> Iterator[RangeOutcome]:
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_forget_parent_pool,
        initargs=(engine,),
    )
    pending: deque[Future[RangeOutcome]] = deque()

    def fill() -> None:
        while len(pending) < 2 * workers:
            task = next(tasks, None)
            if task is None:
                return
            pending.append(pool.submit(_walk, task))

    try:
        fill()
        while pending:
            outcome = pending.popleft().result()
            fill()  # keep the workers busy while the caller looks at this outcome
            if on_progress is not None:
                on_progress(outcome.last)
            yield outcome
    finally:
        # the caller stops at the first problem: drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def _forget_parent_pool(engine: Engine) -> None:
    """In a forked worker: never use (or close) the parent's pooled connections."""
    engine.dispose(close=False)


def _walk(task: _Range) -> RangeOutcome:
    """Worker side: one range, with its own engine."""
    engine = create_engine(task.url)
    try:
        return walk_range(
            RowReader(engine),
            task.first,
            task.last,
            from_position=task.from_position,
            anchors=task.anchors,
            page_size=task.page_size,
            max_findings=task.max_findings,
        )
    finally:
        engine.dispose()
