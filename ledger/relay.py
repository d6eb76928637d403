"""The relay: re-derive the hot queue from the log (invariants 1 and 2).

Where a job stands depends only on its last event in the log
(``decisions.placement_after``): waiting (due when), processing (leased until
when), failed, or finished. Idempotent pushes put it there. Nothing is ever
moved or removed here, only added where missing, so running the relay next to
live workers is safe: a job already ready, delayed or in flight stays where it is.

* ``recover`` reads the last event of every job not completed and pushes every
  live job: at worker start, after Redis lost its keys, and from ``ledger
  recover``. The first one walks the log (``EventStore.unfinished``: one
  index probe per candidate); each writes a checkpoint (the unfinished jobs as
  of the head it read, ``recovery_checkpoint``), so the next reads those jobs'
  last events and the log after that position only: a worker's start-up costs
  what changed since the last recovery, not the size of the log.
* ``sweep`` tails the log from the last position it read (job ids and event
  types only) and pushes the jobs a change left waiting, once they have been
  unseen in Redis for a grace period (the writer normally pushes them itself
  right after its commit). It re-reads their last events first, so it acts on
  where the log stands now. This closes the gap a crash between commit and
  push leaves, and relays jobs enqueued by other processes into an in-process
  (fakeredis) queue. A job stays pending until Redis has acknowledged its push:
  a sweep that fails (Redis away, out of memory, read-only after a failover)
  leaves it for the next one, so every live job is back in the queue one
  sweep after Redis takes writes again, without a restart or a ``recover``.

A job pushed from a read that a concurrent worker has since overtaken (it
finished the job meanwhile) costs one refused claim: the claim reads the log
and the version check refuses the stale attempt (``Ledger.claim_batch``).

Memory holds one page, and the jobs changed within the grace period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ledger.control import Controls, controls_after
from ledger.decisions import Place, place_of, placement_after
from ledger.errors import LedgerError
from ledger.events import OPERATOR_STREAM, EventType, StoredEvent
from ledger.lifecycle import STATUS_AFTER_EVENT, TERMINAL
from ledger.ports import EventLog, WorkQueue
from ledger.store import LiveCheckpoint

log = logging.getLogger("ledger.relay")

#: events that finish a job (nothing of it stays in Redis; ``EventLog.unfinished`` skips them)
_FINISHED: frozenset[EventType] = frozenset(
    event for event, status in STATUS_AFTER_EVENT.items() if status in TERMINAL
)

#: events after which a job waits in the log, so the relay may have to push it
_WAITING: frozenset[EventType] = frozenset(
    event for event, status in STATUS_AFTER_EVENT.items() if place_of(status) is Place.WAITING
)


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
    """Tails the log and pushes what Redis lacks."""

    store: EventLog
    queue: WorkQueue
    grace_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    position: int = 0
    #: job id -> when the relay first saw it left waiting (monotonic seconds)
    pending: dict[str, float] = field(default_factory=dict)
    page_size: int = 5000
    #: the operator stream moved and Redis has not been given its controls since
    controls_stale: bool = False

    def catch_up(self) -> dict[str, EventType]:
        """Read the log's tail after ``position``: the last event type of each changed job."""
        changed: dict[str, EventType] = {}
        while True:
            page = self.store.changes_after(self.position, self.page_size)
            for position, job_id, kind in page:
                changed[job_id] = kind
                self.position = position
            if len(page) < self.page_size:
                return changed

    def recover(self) -> RelayReport:
        """Rebuild the hot queue from the last event of every unfinished job; idempotent.

        From the recovery checkpoint when there is one: the jobs unfinished as of
        its position, and the jobs changed since, so a worker's start-up reads
        what changed since the last recovery, not the whole log. The first
        recovery walks the log. Each one that pushed everything moves the
        checkpoint to the head it read up to.
        """
        # Jobs changed after this head are left to their writers, which reflect them
        # in Redis after their commit, and to the sweep, which tails from here: a
        # lease granted meanwhile and already ended must not be restored.
        # The relay's own position and pending jobs change only once every push is
        # acknowledged: a recovery that fails halfway is tried again whole.
        head = self.store.head().position
        # the controls first: a paused queue's jobs must not be claimable for a moment
        self.reflect_controls()
        checkpoint = self.store.live_checkpoint()
        if checkpoint is None or checkpoint.position > head:
            pages = self._walk(head)
        else:
            pages = self._since(checkpoint, head)
        unfinished: list[str] = []
        pushed = restored = 0
        for page in pages:  # memory holds one page of events, and the unfinished jobs' ids
            page_pushed, page_restored = self._push(page)
            unfinished += [event.job_id for event in page]
            pushed += page_pushed
            restored += page_restored
        self.queue.mark_recovered()
        self.position = head
        self.pending.clear()
        self._save_checkpoint(head, unfinished)
        return RelayReport(self.position, len(unfinished), pushed, restored, recovered=True)

    def _walk(self, head: int) -> Iterator[list[StoredEvent]]:
        """The last event of every unfinished job up to ``head``: one walk of the log."""
        after = 0
        while True:
            page = self.store.unfinished(after, self.page_size, until=head)
            yield page
            if len(page) < self.page_size:
                return
            after = page[-1].position

    def _since(self, checkpoint: LiveCheckpoint, head: int) -> Iterator[list[StoredEvent]]:
        """``_walk``'s answer from the checkpoint and the log after its position.

        A job unfinished at ``head`` either changed after the checkpoint (the
        tail says so, and whether its last change finished it) or did not, and
        then it was unfinished at the checkpoint's position already.
        """
        last: dict[str, EventType] = {}
        after = checkpoint.position
        while after < head:
            page = self.store.changes_after(after, self.page_size)
            for position, job_id, kind in page:
                if position <= head and job_id != OPERATOR_STREAM:
                    last[job_id] = kind
            if len(page) < self.page_size:
                break
            after = page[-1][0]
        candidates = [job_id for job_id in checkpoint.job_ids if job_id not in last]
        candidates += [job_id for job_id, kind in last.items() if kind not in _FINISHED]
        for start in range(0, len(candidates), self.page_size):
            events = self.store.latest_events(candidates[start : start + self.page_size])
            # a job changed after ``head`` (since the tail was read) is left out, as
            # ``_walk`` leaves it out: its writer reflects it, the sweep tails from ``head``
            yield sorted(
                (e for e in events.values() if e.position <= head and e.type not in _FINISHED),
                key=lambda event: event.position,
            )

    def _save_checkpoint(self, head: int, job_ids: list[str]) -> None:
        """Move the checkpoint to ``head``; a failure costs the next start-up a longer read."""
        try:
            self.store.save_live_checkpoint(head, job_ids)
        except LedgerError as error:
            log.warning("recovery checkpoint not saved (%s); recovery stands", error.message)

    def sweep(self) -> RelayReport:
        """Catch up with the log and push jobs left waiting, unseen for ``grace_seconds``.

        If Redis looks flushed, recover instead. Only waiting jobs are pushed: a
        job in flight was put there by the claim script before its ``attempted``
        commit, so outside a flush Redis never lacks it; restoring it from a
        read that is a moment old could resurrect a lease its worker just ended.
        """
        if self.queue.looks_flushed():
            return self.recover()
        now = self.clock()
        changed = self.catch_up()
        if changed.pop(OPERATOR_STREAM, None) is not None:
            # an operator event since the last sweep: Redis may have missed its change
            self.controls_stale = True
        if self.controls_stale:
            self.reflect_controls()
            self.controls_stale = False
        for job_id, kind in changed.items():
            if kind in _WAITING:
                self.pending.setdefault(job_id, now)
            else:
                # claimed (so it was in Redis) or finished since: nothing to relay
                self.pending.pop(job_id, None)
        cutoff = now - self.grace_seconds
        ripe = [job_id for job_id, seen in self.pending.items() if seen <= cutoff]
        last_events = self.store.latest_events(ripe) if ripe else {}
        pushed, restored = self._push(last_events.values(), restore_leases=False)
        # only now that Redis took them: a refused push (Redis away, out of memory,
        # read-only) keeps them pending, and the next sweep tries again
        for job_id in ripe:
            del self.pending[job_id]
        return RelayReport(self.position, len(self.pending), pushed, restored)

    def reflect_controls(self, controls: Controls | None = None) -> Controls:
        """Give Redis the queue's controls (``controls``, or the log's now); an older
        version than Redis holds is left out (``WorkQueue.set_controls``)."""
        if controls is None:
            latest = self.store.latest_events([OPERATOR_STREAM]).get(OPERATOR_STREAM)
            controls = controls_after(latest)
        self.queue.set_controls(controls.version, paused=controls.paused, rate=controls.rate)
        return controls

    def _push(
        self, last_events: Iterable[StoredEvent], *, restore_leases: bool = True
    ) -> tuple[int, int]:
        """Push waiting jobs; restore in-flight ones only when asked (see ``sweep``)."""
        waiting: list[tuple[str, int]] = []
        inflight: list[tuple[str, int]] = []
        for event in last_events:
            place, score = placement_after(event)
            if place is Place.WAITING:
                waiting.append((event.job_id, score))
            elif place is Place.INFLIGHT and restore_leases:
                inflight.append((event.job_id, score))
        return self.queue.push(waiting), self.queue.restore(inflight)
