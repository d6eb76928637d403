"""The projection runner: checkpointed catch-up, follow, full rebuild with swap, as-of replay.

One batch = one transaction: lock the set's checkpoint, check it is where this
runner left it, load the jobs the batch touches, fold, write, move the
checkpoint, commit. A crash anywhere in between rolls the whole batch back.

Events come from ``LogReader.scan`` in pages, as raw rows (no per-event
objects, no JSON or time parsing beyond what the fold needs). Appends are
serialised and positions follow commit order (see ``ledger/store.py``), so
reading ``position > checkpoint`` never skips an event that committed late.

A run keeps one ``Fold`` across its batches: the jobs still open stay in memory
(up to ``held_jobs``; older ones are reloaded from their rows when touched), so
a batch only loads the jobs it has not seen. That is sound because each batch
first checks the checkpoint is where this run left it: nobody else wrote.

A run of at least ``fork_min_events`` events folds in a forked child process
while this one writes (``projections.folder``): two cores instead of one.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from ledger.db import can_fork
from ledger.errors import DatabaseUnavailable, ProjectionBusy
from ledger.events import StoredEvent
from ledger.log_reader import LogReader, translate_errors
from projections import sql
from projections.fold import Fold, JobState, RawEvent
from projections.folder import Folder, ForkedFolder, LocalFolder, Span, fold_page
from projections.leader import Leadership
from projections.memory import MemoryProjection
from projections.rows import ChangeRows
from projections.schema import LIVE, SCRATCH, ProjectionTables
from projections.writers import writer

#: called after each committed batch with (events in the batch, position reached)
OnBatch = Callable[[int, int], None]

DEFAULT_BATCH_SIZE = 5000
#: events per transaction when replaying from event 0 (rebuild, as-of, check)
REPLAY_BATCH_SIZE = 50_000
#: events read (and held) at a time, whatever the batch
PAGE_SIZE = 10_000
#: open jobs a run keeps in memory (about 1 kB each); older ones are reloaded when touched
HELD_JOBS = 10_000
#: restarts of a live catch-up after another runner moved the checkpoint
MAX_RESTARTS = 100
#: a run with at least this many events to fold folds them in a forked child process
FORK_MIN_EVENTS = 20_000


class CheckpointMoved(Exception):
    """Another runner applied events to this table set since we read its checkpoint."""

    def __init__(self, position: int) -> None:
        super().__init__(f"checkpoint moved to {position}")
        self.position = position


@dataclass
class Projector:
    """Keeps one table set (``LIVE`` or ``SCRATCH``) folded up to a log position."""

    store: LogReader
    tables: ProjectionTables = LIVE
    batch_size: int = DEFAULT_BATCH_SIZE
    held_jobs: int = HELD_JOBS
    #: fold in a child process from this many events on (``None``: ``FORK_MIN_EVENTS``)
    fork_min_events: int | None = None

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def checkpoint(self) -> int:
        """The last position applied to this table set."""
        with sql.reading(self.engine) as conn:
            return sql.read_checkpoint(conn, self.tables)

    def backlog(self) -> int:
        """Events in the log after the checkpoint."""
        return max(0, self.store.head().position - self.checkpoint())

    def catch_up(
        self,
        *,
        until_position: int | None = None,
        until_time: datetime | None = None,
        on_batch: OnBatch | None = None,
    ) -> int:
        """Apply every event after the checkpoint (up to the bounds); return the position.

        The live set tolerates other runners (it resumes from wherever they got
        to); on the scratch set another writer means a concurrent rebuild or
        replay, and ``ProjectionBusy`` is raised.
        """
        for _ in range(MAX_RESTARTS):
            start = self.checkpoint()
            try:
                return self._run(start, until_position, until_time, on_batch)
            except CheckpointMoved:
                if self.tables is not LIVE:
                    raise ProjectionBusy() from None
        raise ProjectionBusy(
            f"the {self.tables.name} projections kept moving under this runner; "
            "stop the other runners and retry"
        )

    def _run(
        self,
        position: int,
        until_position: int | None,
        until_time: datetime | None,
        on_batch: OnBatch | None,
    ) -> int:
        span = self._last_position(until_position) - position
        if span <= 0:
            return position  # nothing to fold: no write transaction at all
        loader = _Loader(self.engine, self.tables)
        # closed on every way out: no reader thread or fold process outlives the run
        with (
            closing(self.folder(position, until_position, until_time, span=span)) as folder,
            translate_errors(),
            self.engine.connect() as conn,
            sql.bulk_writing(conn),
        ):
            rows: ChangeRows | None = None
            more = True
            while more:
                # one transaction takes drains until it holds ``batch_size`` events:
                # memory follows the page, commits follow the batch
                count = 0
                with conn.begin():
                    current = sql.lock_checkpoint(conn, self.tables)
                    if current != position:
                        raise CheckpointMoved(current)
                    # jobs are loaded only past this check, so they stand at ``position``
                    with loader.within(conn):
                        if rows is None:
                            rows = folder.next(loader)
                        while rows is not None and count < self.batch_size:
                            sql.write_rows(conn, self.tables, rows)
                            position = rows.position
                            count += rows.events
                            rows = folder.next(loader)
                    if count:
                        sql.set_checkpoint(conn, self.tables, position)
                more = rows is not None
                if count and on_batch is not None:
                    on_batch(count, position)
        return position

    def _last_position(self, until_position: int | None) -> int:
        last = self.store.head().position
        return last if until_position is None else min(last, until_position)

    def folder(
        self,
        start: int,
        until_position: int | None = None,
        until_time: datetime | None = None,
        *,
        span: int | None = None,
    ) -> Folder:
        """The fold of the events after ``start``: forked when there are enough of them."""
        pages = Span(
            start, until_position, until_time, min(self.batch_size, PAGE_SIZE), self.held_jobs
        )
        if span is None:
            span = self._last_position(until_position) - start
        threshold = FORK_MIN_EVENTS if self.fork_min_events is None else self.fork_min_events
        if span >= threshold and can_fork(self.engine):
            return ForkedFolder(self.store, pages)
        return LocalFolder(self.store, pages)

    def apply(self, batch: list[StoredEvent], *, expected: int) -> int:
        """Fold one batch in one transaction; ``CheckpointMoved`` if we are not at ``expected``."""
        fold = Fold()
        fold.position = expected
        rows: list[RawEvent] = [
            (e.position, e.job_id, e.version, e.type.value, e.data, e.occurred_at, e.actor)
            for e in batch
        ]
        with translate_errors(), self.engine.begin() as conn:
            current = sql.lock_checkpoint(conn, self.tables)
            if current != expected:
                raise CheckpointMoved(current)
            position = self.fold_into(conn, fold, rows)
            sql.set_checkpoint(conn, self.tables, position)
        return position

    def fold_into(self, conn: Connection, fold: Fold, rows: Sequence[RawEvent]) -> int:
        """Fold ``rows`` and write what changed, in the caller's transaction; the position."""
        drained = fold_page(
            fold,
            rows,
            lambda job_ids: sql.load_states(conn, self.tables, job_ids),
            writer(conn.dialect),
            self.held_jobs,
        )
        sql.write_rows(conn, self.tables, drained)
        return drained.position

    def reset(self) -> None:
        """Empty the table set (checkpoint 0)."""
        with translate_errors(), self.engine.begin() as conn:
            sql.clear(conn, self.tables)

    def follow(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 1.0,
        on_batch: OnBatch | None = None,
        on_unavailable: Callable[[DatabaseUnavailable], None] | None = None,
    ) -> int:
        """Catch up, then keep following the log until ``stop`` is set; the position.

        Only the leader folds (``projections.leader``: one follower among the
        ``serve`` workers and ``ledger project --follow`` on PostgreSQL); the others
        wait for the lead at each poll. A database that is away (at start, a
        restart, a fail-over) does not end the follower: it reports through
        ``on_unavailable`` and tries again at the next poll. A batch cut short by
        it was rolled back, so nothing is lost.
        """
        position = 0
        with closing(Leadership(self.engine)) as lead:
            while True:
                try:
                    if lead.hold():
                        position = self.catch_up(on_batch=on_batch)
                    else:
                        position = self.checkpoint()
                except DatabaseUnavailable as exc:
                    if on_unavailable is not None:
                        on_unavailable(exc)
                if stop.wait(poll_seconds):
                    return position


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector for a long fold.

    A replay allocates millions of short-lived tuples and dicts (none in cycles;
    reference counting frees them), and each allocation burst makes the
    collector walk every live object again: about a quarter of a rebuild's CPU.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def replay(
    store: LogReader,
    *,
    until_position: int | None = None,
    until_time: datetime | None = None,
    batch_size: int = REPLAY_BATCH_SIZE,
    on_batch: OnBatch | None = None,
) -> int:
    """As-of replay into the scratch tables: empty them, fold from event 0 up to the bounds.

    Returns the last position applied. Query the result with ``tables=SCRATCH``.
    """
    scratch = Projector(store, SCRATCH, batch_size)
    scratch.reset()
    with _no_cycle_collection():
        return scratch.catch_up(
            until_position=until_position, until_time=until_time, on_batch=on_batch
        )


def swap(engine: Engine) -> int:
    """Make the scratch set live, atomically; the live position it brings.

    When this role may rename the tables (SQLite; PostgreSQL when it owns them)
    the two sets trade names and checkpoints in one transaction, so the rows are
    not written twice, and the old live rows, now scratch, are emptied.
    Elsewhere the scratch rows and checkpoint are copied over the live ones.
    """
    if not sql.can_rename(engine, LIVE, SCRATCH):
        with translate_errors(), engine.begin() as conn:
            return sql.copy_over(conn, SCRATCH, LIVE)
    # statistics first, so the planner knows the tables from their first query as live
    sql.analyze(engine, SCRATCH)
    with translate_errors(), engine.begin() as conn:
        return sql.trade_names(conn, SCRATCH, LIVE)


def rebuild(
    store: LogReader,
    *,
    batch_size: int = REPLAY_BATCH_SIZE,
    on_batch: OnBatch | None = None,
) -> int:
    """Full rebuild of the live set from event 0, then catch-up; the live position reached.

    Appends keep going throughout; readers see the old live rows until the
    rebuilt ones are swapped in, and the rebuilt ones after.

    * Replay into scratch in short transactions (appends interleave; on SQLite,
      one writer for the whole file, they must), catch scratch up, then ``swap``
      it in by trading names, so the rows go in once, into emptied tables,
      with no dead rows left behind.
    * PostgreSQL when this role does not own the tables (it cannot rename
      them): one transaction folds the log straight into the live set. MVCC
      keeps every reader on the old rows until it commits, and a live runner
      waits on the checkpoint row, then carries on; the old rows are left dead
      (vacuumed here if the server's autovacuum is off).
    """
    engine = store.engine
    if not sql.can_rename(engine, LIVE, SCRATCH):  # always can on SQLite
        with _no_cycle_collection():
            dead_rows = _rebuild_in_place(store, batch_size, on_batch)
        sql.tidy_after_rebuild(engine, LIVE, dead_rows)
    else:
        replay(store, batch_size=batch_size, on_batch=on_batch)
        # appends that landed during the long replay: fold them into scratch before the swap
        Projector(store, SCRATCH, batch_size).catch_up(on_batch=on_batch)
        swap(engine)
    return Projector(store, LIVE, batch_size).catch_up(on_batch=on_batch)


def _rebuild_in_place(store: LogReader, batch_size: int, on_batch: OnBatch | None) -> int:
    """Fold the whole log into the live set in one transaction; the old rows it deleted."""
    live = Projector(store, LIVE, batch_size)
    loader = _Loader(store.engine, LIVE)
    # the folder (and a forked child) starts before this transaction opens
    with closing(live.folder(0)) as folder, translate_errors(), store.engine.begin() as conn:
        sql.lock_checkpoint(conn, LIVE)
        # DELETE, not TRUNCATE: readers must keep reading the old rows meanwhile
        deleted = sql.clear(conn, LIVE, truncate=False)
        position = 0
        with loader.within(conn):
            while (rows := folder.next(loader)) is not None:
                sql.write_rows(conn, LIVE, rows)
                position = rows.position
                if on_batch is not None:
                    on_batch(rows.events, position)
        sql.set_checkpoint(conn, LIVE, position)
    return deleted


class _Loader:
    """Loads stored job states in the run's open transaction, or in a read of their own."""

    def __init__(self, engine: Engine, tables: ProjectionTables) -> None:
        self._engine = engine
        self._tables = tables
        self._conn: Connection | None = None

    @contextmanager
    def within(self, conn: Connection) -> Iterator[None]:
        self._conn = conn
        try:
            yield
        finally:
            self._conn = None

    def __call__(self, job_ids: list[str]) -> list[JobState]:
        if self._conn is not None:
            return sql.load_states(self._conn, self._tables, job_ids)
        with sql.reading(self._engine) as conn:
            return sql.load_states(conn, self._tables, job_ids)


def replay_in_memory(
    store: LogReader,
    *,
    until_position: int | None = None,
    until_time: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> MemoryProjection:
    """As-of replay into memory (memory grows with the number of jobs: small logs only)."""
    events = store.read_all(
        until_position=until_position, until_time=until_time, page_size=batch_size
    )
    return MemoryProjection().replay(events, batch_size)
