"""The relay: re-derive the hot queue from the log (invariants 1 and 2).

The log is folded (``lifecycle.apply``) into the state of every job that is not
completed; from that state ``decisions.placement`` says where Redis should hold
each job, and idempotent pushes put it there. Nothing is ever moved or removed
here, only added where missing, so running the relay next to live workers is
safe: a job already ready, delayed or in flight stays where it is.

* ``recover`` folds the whole log from position 0 and pushes every live job
  (at worker start, after Redis lost its keys, and from ``ledger recover``).
* ``sweep`` tails the log from the last position it read and pushes the jobs
  whose state changed, once they have been unseen in Redis for a grace period
  (the writer normally pushes them itself right after its commit). This closes
  the gap a crash between commit and push leaves, and relays jobs enqueued by
  other processes into an in-process (fakeredis) queue.

Memory holds the state of live (not completed) jobs only; reading the log is
paged by the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ledger.decisions import Place, placement
from ledger.events import EventType, StoredEvent
from ledger.lifecycle import Job, JobStatus, apply
from ledger.queue import HotQueue
from ledger.store import EventStore


@dataclass(frozen=True, slots=True)
class RelayReport:
    """What one recover or sweep did."""

    position: int
    live: int
    pushed: int
    restored: int
    recovered: bool = False


@dataclass
class Relay:
    """Folds the log into live job states and pushes what Redis lacks."""

    store: EventStore
    queue: HotQueue
    grace_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    position: int = 0
    live: dict[str, Job] = field(default_factory=dict)
    #: job id -> when the relay first saw its latest change (monotonic seconds)
    pending: dict[str, float] = field(default_factory=dict)

    def catch_up(self) -> set[str]:
        """Fold the log after ``position``; returns the ids of jobs that changed."""
        changed: set[str] = set()
        for event in self.store.read_all(self.position):
            self._fold(event)
            changed.add(event.job_id)
            self.position = event.position
        return changed

    def _fold(self, event: StoredEvent) -> None:
        job = self.live.get(event.job_id)
        if job is None and event.type is not EventType.ENQUEUED:
            return  # an event of a job already completed (and forgotten)
        job = apply(job, event)
        if job.status is JobStatus.COMPLETED:
            self.live.pop(event.job_id, None)
        else:
            self.live[event.job_id] = job

    def recover(self, *, refold: bool = True) -> RelayReport:
        """Rebuild the hot queue from the log; idempotent.

        ``refold`` re-reads the log from position 0 (start-up, ``ledger recover``);
        without it the relay catches up from where it was (Redis was flushed but
        the relay's own fold is intact).
        """
        if refold:
            self.position = 0
            self.live.clear()
        self.catch_up()
        self.pending.clear()
        pushed, restored = self._push(self.live.values())
        self.queue.mark_recovered()
        return RelayReport(self.position, len(self.live), pushed, restored, recovered=True)

    def sweep(self) -> RelayReport:
        """Catch up with the log and push changed jobs unseen for ``grace_seconds``.

        If Redis looks flushed, recover instead. Only waiting jobs are pushed: a
        job in flight was put there by the claim script before its ``attempted``
        commit, so outside a flush Redis never lacks it; restoring it from a
        fold that is a moment old could resurrect a lease its worker just ended.
        """
        if self.queue.looks_flushed():
            return self.recover(refold=False)
        now = self.clock()
        for job_id in self.catch_up():
            self.pending[job_id] = now
        cutoff = now - self.grace_seconds
        ripe = [job_id for job_id, seen in self.pending.items() if seen <= cutoff]
        for job_id in ripe:
            del self.pending[job_id]
        jobs = (self.live[job_id] for job_id in ripe if job_id in self.live)
        pushed, restored = self._push(jobs, restore_leases=False)
        return RelayReport(self.position, len(self.live), pushed, restored)

    def _push(self, jobs: Iterable[Job], *, restore_leases: bool = True) -> tuple[int, int]:
        """Push waiting jobs; restore in-flight ones only when asked (see ``sweep``)."""
        waiting: list[tuple[str, int]] = []
        inflight: list[tuple[str, int]] = []
        cached: list[Job] = []
        for job in jobs:
            place, score = placement(job)
            if place is Place.WAITING:
                waiting.append((job.job_id, score))
            elif place is Place.INFLIGHT and restore_leases:
                inflight.append((job.job_id, score))
            else:
                continue
            cached.append(job)
        # only fill missing cache entries: a worker's entry may be newer than this fold
        self.queue.cache(cached, only_missing=True)
        return self.queue.push(waiting), self.queue.restore(inflight)
