"""Group commit: concurrent callers of one process share write transactions.

The way databases group their commits: a caller who finds the writer idle
writes its own item at once (a batch of one); callers who arrive while a write
is in progress wait, and the first of them to see it finish writes everything
that queued up meanwhile (up to ``max_batch``) in the next one. Each caller
still gets its own outcome: the write returns one result *or error* per item,
and an error raised by the write as a whole (a database outage) goes to every
caller of that batch.

A write has two phases. ``write`` runs one batch at a time (it holds the log's
append lock, so running two at once would only make them queue in the
database). ``after`` (the Redis push of the batch's new jobs) runs outside that
turn, while the next batch is being written.

This module knows nothing of the log: it is plain threads and a condition.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from ledger.errors import LedgerError

__all__ = ["GroupCommit", "WriterLost"]

T = TypeVar("T")
R = TypeVar("R")

#: what a write gives back per item: its result, or the error that item alone failed with
Outcomes = Sequence[R | Exception]


class WriterLost(LedgerError):
    """The thread writing this batch was interrupted before it knew the outcome; the job may
    be in the log: send the same request again under the same idempotency key."""


@dataclass(slots=True)
class _Slot(Generic[T, R]):
    item: T
    #: in a batch being written (by whoever leads it)
    taken: bool = False
    done: bool = False
    outcome: R | Exception | None = None


class GroupCommit(Generic[T, R]):
    """Batch the items of concurrent ``submit`` calls into shared writes (see the module)."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Outcomes[R]],
        *,
        after: Callable[[Outcomes[R]], Outcomes[R]] | None = None,
        max_batch: int = 100,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._after = after
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: deque[_Slot[T, R]] = deque()
        self._writing = False
        #: how many batches were written, and how many items they held (for benches)
        self.batches = 0
        self.items = 0

    @property
    def waiting(self) -> int:
        """Items queued for the next batch (not yet taken by a writer)."""
        with self._cond:
            return len(self._pending)

    def submit(self, item: T) -> R:
        """Write ``item`` (alone or with others') and return its result or raise its error."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._pending.append(slot)
        while True:
            with self._cond:
                while not slot.done and (self._writing or slot.taken):
                    self._cond.wait()
                if slot.done:
                    return _unwrap(slot.outcome)
                # the writer is idle and this caller's item still waits: lead the next batch
                count = min(self.max_batch, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                for taken in batch:
                    taken.taken = True
                self._writing = True
                self.batches += 1
                self.items += count
            self._lead(batch)

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        """Write one batch, hand the writer's turn on, then finish the batch and settle it."""
        items = [slot.item for slot in batch]
        outcomes: Outcomes[R] = []
        try:
            try:
                outcomes = _attempt(lambda: self._write(items), len(batch))
            finally:
                with self._cond:  # the next batch may be written while this one finishes
                    self._writing = False
                    self._cond.notify_all()
            after = self._after
            if after is not None:
                written = outcomes
                outcomes = _attempt(lambda: after(written), len(batch))
        except BaseException:  # interrupted: free the followers, then let it propagate
            outcomes = [WriterLost()] * len(batch)
            raise
        finally:
            with self._cond:
                self._settle(batch, outcomes)
                self._cond.notify_all()

    @staticmethod
    def _settle(batch: list[_Slot[T, R]], outcomes: Outcomes[R]) -> None:
        for slot, outcome in zip(batch, outcomes, strict=True):
            if not slot.done:
                slot.outcome = outcome
                slot.done = True


def _attempt(run: Callable[[], Outcomes[R]], count: int) -> Outcomes[R]:
    """One phase of a batch: its outcomes, or the error it raised as every item's."""
    try:
        outcomes = run()
    except Exception as error:
        return [error] * count
    if len(outcomes) != count:
        problem = RuntimeError(f"a group write gave {len(outcomes)} outcomes for {count} items")
        return [problem] * count
    return outcomes


def _unwrap(outcome: R | Exception | None) -> R:
    if isinstance(outcome, Exception):
        # one error object may be every caller's: each raises its own copy (own traceback)
        raise _own_copy(outcome)
    return cast(R, outcome)  # a settled slot holds its result


def _own_copy(error: Exception) -> Exception:
    try:
        return copy.copy(error)
    except Exception:  # an exception type that cannot be copied: share the one object
        return error
