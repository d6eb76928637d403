"""Redis repair and reflection: make the hot queue hold each job where the log says.

The commands (``ledger.service``) commit to the log first; everything here
runs after a commit and only moves Redis towards the log, never the other way:

* ``reflect`` puts jobs whose state just changed where ``decisions.placement``
  says (waiting, in flight, gone);
* ``repair`` does the same for jobs Redis held wrongly (a stale push, a claim the
  log refused), first finishing a ``failed`` job's follow-up in the log;
* ``reap`` records ``failed(lease expired)`` for jobs whose lease ran out;
* ``recover``, ``sweep`` (``ledger.relay``) re-derive Redis from the log after
  a crash between commit and push, or after Redis lost its keys.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.decisions import LEASE_EXPIRED, Place, failure_events, follow_up_events, placement
from ledger.errors import DatabaseUnavailable, QueueUnavailable
from ledger.events import StoredEvent
from ledger.lifecycle import Job, JobStatus, apply, fold
from ledger.ports import EventLog, WorkQueue
from ledger.relay import Relay, RelayReport
from ledger.retry import RetryPolicy
from ledger.store import StreamAppend

log = logging.getLogger("ledger.service")

#: how long a reaper holds an expired job while it records the failure
REAP_GRACE_MS = 10_000


@dataclass
class QueueRepair:
    """Reflects committed changes into Redis and repairs what Redis holds wrongly."""

    store: EventLog
    queue: WorkQueue
    policy: RetryPolicy
    rng: random.Random
    relay: Relay

    def reap(self, limit: int = 500) -> int:
        """Jobs whose lease expired: ``failed(lease expired)``, then requeued or dead-lettered.

        The log decides: a job that is no longer processing at the attempt the
        reaper saw (its worker's outcome got there first) is refused by the
        version check and merely repaired in Redis. Returns the jobs reaped.
        """
        job_ids = self.queue.reap(limit, REAP_GRACE_MS)
        if not job_ids:
            return 0
        states = self.log_states(job_ids)
        appends: list[StreamAppend] = []
        others: list[str] = [job_id for job_id in job_ids if job_id not in states]
        for job_id, job in states.items():
            if job.status is not JobStatus.PROCESSING:
                others.append(job_id)
                continue
            events = failure_events(
                job,
                job.attempts,
                LEASE_EXPIRED,
                retryable=True,
                actor="reaper",
                policy=self.policy,
                rng=self.rng,
            )
            appends.append(StreamAppend(job_id, job.version, events))
        result = self.store.append_many(appends, skip_stale=True)
        after = folded(states, result.events)
        self.reflect(list(after.values()))
        self.repair(others + [error.job_id for error in result.rejected])
        return len(after)

    def recover(self) -> RelayReport:
        """Rebuild the hot queue from the log: every unfinished job's last event (idempotent)."""
        return self.relay.recover()

    def sweep(self) -> RelayReport:
        """Push what the log changed and Redis still lacks (recovers if Redis was flushed)."""
        return self.relay.sweep()

    def cleanup(self) -> int:
        """Drop payload cache entries of jobs no longer queued; events are never deleted."""
        return self.queue.clean_payloads()

    def repair(self, job_ids: Sequence[str]) -> None:
        """Make Redis hold these jobs where the log says (after a refused or odd claim)."""
        if not job_ids:
            return
        found = self.log_states(job_ids)
        states = {job_id: found.get(job_id) for job_id in dict.fromkeys(job_ids)}
        unfinished = [
            StreamAppend(
                job.job_id,
                job.version,
                follow_up_events(job, actor="repair", policy=self.policy, rng=self.rng),
            )
            for job in states.values()
            if job is not None and job.status is JobStatus.FAILED
        ]
        result = self.store.append_many(unfinished, skip_stale=True)
        known = {job_id: job for job_id, job in states.items() if job is not None}
        after = {**known, **folded(known, result.events)}
        self.reflect(list(after.values()))
        missing = [job_id for job_id, job in states.items() if job is None]
        if missing:
            self.queue.finish(missing)

    def repair_quietly(self, job_ids: Sequence[str]) -> None:
        """``repair`` after a commit: a backend that is away must not fail the call whose
        outcomes and claims are already in the log (the reaper and the sweep repair)."""
        try:
            self.repair(job_ids)
        except (QueueUnavailable, DatabaseUnavailable) as error:
            log.warning("%d jobs not repaired in Redis (%s); the sweep will", len(job_ids), error)

    def reflect(self, jobs: Sequence[Job]) -> None:
        """After a commit: hold each job in Redis where the log now says it is."""
        waiting: list[tuple[str, int]] = []
        waiting_jobs: list[Job] = []
        gone: list[str] = []
        inflight: list[Job] = []
        for job in jobs:
            place, score = placement(job)
            if place is Place.WAITING:
                waiting.append((job.job_id, score))
                waiting_jobs.append(job)
            elif place is Place.GONE:
                gone.append(job.job_id)
            else:
                inflight.append(job)  # the claim script already holds it in flight
        self.queue.move(waiting, waiting_jobs)
        self.queue.finish(gone)
        self.queue.cache(inflight)

    def reflect_quietly(self, jobs: Sequence[Job]) -> None:
        """``reflect`` after an outcome: Redis being down must not undo a committed outcome."""
        try:
            self.reflect(jobs)
        except QueueUnavailable as error:
            log.warning("outcome recorded but Redis not updated (%s); repair will", error)

    def log_states(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """Jobs folded from their streams, read in one go (unknown jobs left out)."""
        streams = self.store.read_streams(job_ids)
        return {job_id: job for job_id, events in streams.items() if (job := fold(events))}


def folded(states: dict[str, Job], events: Sequence[StoredEvent]) -> dict[str, Job]:
    """The new state of each job that got events (``lifecycle.apply``, in order)."""
    after: dict[str, Job] = {}
    for event in events:
        after[event.job_id] = apply(after.get(event.job_id) or states[event.job_id], event)
    return after
