"""Where a run's folded rows come from: this process, or a forked child process.

A long run is two kinds of CPU work: reading and folding the log, and writing
rows (binding, COPY framing, B-tree inserts). On two cores they can overlap.
``ForkedFolder`` scans and folds in a forked child and hands every drain over as
plain rows (``projections.rows.ChangeRows``) through a pipe; the runner's
process only writes them, in its own transactions. ``LocalFolder`` does the
same work in-process: short runs, and where no second process can open the
database (an in-memory SQLite, a platform without ``fork``).

Either folder asks its caller for the stored state of a job it no longer holds
(``LoadStates``): the caller reads it in the transaction it writes in, which
sees every row written so far (a child could not see uncommitted rows).

A pipe holds one message at a time: the child blocks until the runner has taken
the last drain, so it is at most one page ahead and memory stays bounded.
Whatever ends a run (the last page, an error on either side, Ctrl-C),
``close`` leaves no child behind.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Generator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from typing import Protocol

from ledger.errors import FoldProcessLost
from ledger.log_reader import LogReader
from ledger.log_reader import RawEvent as LogRow
from projections.fold import Fold, JobState, RawEvent
from projections.rows import ChangeRows, change_rows
from projections.writers import Writer, writer

#: the stored state of jobs the fold needs and no longer holds
LoadStates = Callable[[list[str]], list[JobState]]


class Folder(Protocol):
    """Folds the log page by page; each ``next`` is one page's drain as rows."""

    def next(self, load: LoadStates) -> ChangeRows | None:
        """The next page folded (``None`` at the end of the run)."""

    def close(self) -> None:
        """Stop (idempotent); no process or reader thread is left running."""


@dataclass(frozen=True, slots=True)
class Span:
    """The events a run folds: after ``start``, up to the bounds, read in pages."""

    start: int
    until_position: int | None
    until_time: datetime | None
    page_size: int
    #: open jobs the fold keeps in memory between pages (older ones are loaded again)
    held_jobs: int

    def pages(self, store: LogReader) -> Generator[list[LogRow], None, None]:
        return store.scan(
            self.start,
            until_position=self.until_position,
            until_time=self.until_time,
            page_size=self.page_size,
        )


def fold_page(
    fold: Fold, page: Sequence[RawEvent], load: LoadStates, out: Writer, held_jobs: int
) -> ChangeRows:
    """Fold one page (loading the jobs it needs) and drain it as rows in ``out``'s form."""
    missing = fold.missing(page)
    if missing:
        fold.hold(load(missing))
    fold.fold(page)
    rows = change_rows(fold.drain(), out.time, out.day, len(page))
    fold.forget(held_jobs)
    return rows


class LocalFolder:
    """Scan and fold in this process."""

    def __init__(self, store: LogReader, span: Span) -> None:
        self._pages = span.pages(store)
        self._fold = Fold()
        self._fold.position = span.start
        self._writer = writer(store.engine.dialect)
        self._held_jobs = span.held_jobs

    def next(self, load: LoadStates) -> ChangeRows | None:
        page = next(self._pages, None)
        if page is None:
            return None
        return fold_page(self._fold, page, load, self._writer, self._held_jobs)

    def close(self) -> None:
        self._pages.close()


class ForkedFolder:
    """Scan and fold in a forked child; this process receives the rows."""

    def __init__(self, store: LogReader, span: Span) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child_end, store, span), name="projection-fold", daemon=True
        )
        self._process.start()
        child_end.close()

    def next(self, load: LoadStates) -> ChangeRows | None:
        while True:
            try:
                kind, payload = self._pipe.recv()
            except EOFError:
                self._process.join()
                raise FoldProcessLost(self._process.exitcode) from None
            if kind == "rows":
                rows: ChangeRows = payload
                return rows
            if kind == "load":
                self._pipe.send(load(payload))
            elif kind == "end":
                return None
            else:
                raise payload

    def close(self) -> None:
        self._pipe.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _child(pipe: Pipe, store: LogReader, span: Span) -> None:
    """The forked side: fold ``span`` and send each drain, then ``end`` (or the error)."""
    # the parent's pooled connections are the parent's: drop them here unclosed
    store.engine.dispose(close=False)

    def load(job_ids: list[str]) -> list[JobState]:
        pipe.send(("load", job_ids))
        states: list[JobState] = pipe.recv()
        return states

    try:
        with closing(LocalFolder(store, span)) as folder:
            while (rows := folder.next(load)) is not None:
                pipe.send(("rows", rows))
        pipe.send(("end", None))
    except (BrokenPipeError, EOFError):
        pass  # the runner stopped listening: it has its own error to report
    except BaseException as error:
        with suppress(BrokenPipeError):
            pipe.send(("error", _picklable(error)))
    finally:
        store.engine.dispose()


def _picklable(error: BaseException) -> BaseException:
    """``error`` if it survives the pipe, else a ``RuntimeError`` naming it."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
