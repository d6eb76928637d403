"""The projection runner: checkpointed catch-up, follow, full rebuild with swap, as-of replay.

One batch = one transaction: lock the set's checkpoint, check it is where this
runner left it, load the jobs the batch touches, fold, write, move the
checkpoint, commit. A crash anywhere in between rolls the whole batch back.

Events come from ``EventStore.scan`` in pages, as raw rows (no per-event
objects, no JSON or time parsing beyond what the fold needs). Appends are
serialised and positions follow commit order (see ``ledger/store.py``), so
reading ``position > checkpoint`` never skips an event that committed late.

A run keeps one ``Fold`` across its batches: the jobs still open stay in memory
(up to ``held_jobs``; older ones are reloaded from their rows when touched), so
a batch only loads the jobs it has not seen. That is sound because each batch
first checks the checkpoint is where this run left it: nobody else wrote.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from ledger.errors import DatabaseUnavailable, ProjectionBusy
from ledger.events import StoredEvent
from ledger.store import EventStore, translate_errors
from projections import sql
from projections.fold import Fold, RawEvent
from projections.memory import MemoryProjection
from projections.schema import LIVE, SCRATCH, ProjectionTables

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


class CheckpointMoved(Exception):
    """Another runner applied events to this table set since we read its checkpoint."""

    def __init__(self, position: int) -> None:
        super().__init__(f"checkpoint moved to {position}")
        self.position = position


@dataclass
class Projector:
    """Keeps one table set (``LIVE`` or ``SCRATCH``) folded up to a log position."""

    store: EventStore
    tables: ProjectionTables = LIVE
    batch_size: int = DEFAULT_BATCH_SIZE
    held_jobs: int = HELD_JOBS

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
        fold = Fold()
        fold.position = position
        scan = self.store.scan(
            position,
            until_position=until_position,
            until_time=until_time,
            page_size=min(self.batch_size, PAGE_SIZE),
        )
        # closed on every way out, so the scan's reader thread is gone when this returns
        with closing(scan) as pages:
            page = next(pages, None)
            while page is not None:
                # one transaction takes pages until it holds ``batch_size`` events:
                # memory follows the page, commits follow the batch
                count = 0
                with translate_errors(), self.engine.begin() as conn:
                    current = sql.lock_checkpoint(conn, self.tables)
                    if current != position:
                        raise CheckpointMoved(current)
                    while page is not None and count < self.batch_size:
                        position = self.fold_into(conn, fold, page)
                        count += len(page)
                        page = next(pages, None)
                    sql.set_checkpoint(conn, self.tables, position)
                fold.forget(self.held_jobs)
                if on_batch is not None:
                    on_batch(count, position)
        return position

    def apply(self, batch: list[StoredEvent], *, expected: int) -> int:
        """Fold one batch in one transaction; ``CheckpointMoved`` if we are not at ``expected``."""
        fold = Fold()
        fold.position = expected
        rows: list[RawEvent] = [
            (e.position, e.job_id, e.version, e.type.value, e.data, e.occurred_at, e.actor)
            for e in batch
        ]
        return self._apply(fold, rows, expected=expected)

    def _apply(self, fold: Fold, rows: Sequence[RawEvent], *, expected: int) -> int:
        with translate_errors(), self.engine.begin() as conn:
            current = sql.lock_checkpoint(conn, self.tables)
            if current != expected:
                raise CheckpointMoved(current)
            position = self.fold_into(conn, fold, rows)
            sql.set_checkpoint(conn, self.tables, position)
        fold.forget(self.held_jobs)
        return position

    def fold_into(self, conn: Connection, fold: Fold, rows: Sequence[RawEvent]) -> int:
        """Fold ``rows`` and write what changed, in the caller's transaction; the position."""
        missing = fold.missing(rows)
        if missing:
            fold.hold(sql.load_states(conn, self.tables, missing))
        fold.fold(rows)
        changes = fold.drain()
        sql.write_changes(conn, self.tables, changes)
        return changes.position

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
        """Catch up, then keep following the log until ``stop`` is set.

        A database that goes away (a restart, a fail-over) does not end the
        follower: it reports through ``on_unavailable`` and tries again at the
        next poll. A batch cut short by it was rolled back, so nothing is lost.
        """
        position = self.catch_up(on_batch=on_batch)
        while not stop.wait(poll_seconds):
            try:
                position = self.catch_up(on_batch=on_batch)
            except DatabaseUnavailable as exc:
                if on_unavailable is not None:
                    on_unavailable(exc)
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
    store: EventStore,
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
    """Make the scratch set live: copy its rows and checkpoint over the live set, atomically."""
    with translate_errors(), engine.begin() as conn:
        return sql.copy_over(conn, SCRATCH, LIVE)


def rebuild(
    store: EventStore,
    *,
    batch_size: int = REPLAY_BATCH_SIZE,
    on_batch: OnBatch | None = None,
) -> int:
    """Full rebuild of the live set from event 0, then catch-up; the live position reached.

    Appends keep going throughout; readers see the old live rows until the
    rebuilt ones commit, and the rebuilt ones after.

    * SQLite (one writer for the whole file): replay into scratch in short
      transactions, so appends interleave, then swap it in.
    * PostgreSQL: one transaction folds the log straight into the live set.
      MVCC keeps every reader on the old rows until it commits, appends take no
      lock of ours, and a live runner waits on the checkpoint row, then carries
      on. Filling scratch and copying it over would double the writes.
    """
    if store.engine.dialect.name == "postgresql":
        with _no_cycle_collection():
            _rebuild_in_place(store, batch_size, on_batch)
        sql.vacuum_if_needed(store.engine, LIVE)
    else:
        replay(store, batch_size=batch_size, on_batch=on_batch)
        # appends that landed during the long replay: fold them into scratch before the swap
        Projector(store, SCRATCH, batch_size).catch_up(on_batch=on_batch)
        swap(store.engine)
    return Projector(store, LIVE, batch_size).catch_up(on_batch=on_batch)


def _rebuild_in_place(store: EventStore, batch_size: int, on_batch: OnBatch | None) -> None:
    live = Projector(store, LIVE, batch_size)
    fold = Fold()
    with translate_errors(), store.engine.begin() as conn:
        sql.lock_checkpoint(conn, LIVE)
        # DELETE, not TRUNCATE: readers must keep reading the old rows meanwhile
        sql.clear(conn, LIVE, truncate=False)
        position = 0
        with closing(store.scan(page_size=min(batch_size, PAGE_SIZE))) as pages:
            for page in pages:
                position = live.fold_into(conn, fold, page)
                fold.forget(live.held_jobs)
                if on_batch is not None:
                    on_batch(len(page), position)
        sql.set_checkpoint(conn, LIVE, position)


def replay_in_memory(
    store: EventStore,
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
