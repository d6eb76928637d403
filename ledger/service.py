"""The Ledger service: the one place that orders SQL (the truth) before Redis (the hot queue).

Every operation appends to the log first and touches Redis only after the
commit, so a crash in between leaves the log ahead of Redis, never behind; the
relay (``ledger.relay``) and the repair path (``ledger.repair``) close such gaps
from the log.

Exactly-once outcomes rest on the store's version check: a claim records
``attempted`` at the version it read, and an outcome is appended at the version
its attempt produced. Whatever else happened to the job in between (the lease
was reaped, another worker got there first) moved the version on, so the stale
append is refused (``StaleAttempt``) and nothing is recorded twice. Batches go
through ``append_many(..., skip_stale=True)``: one SQL transaction per batch, and
a worker's outcomes share theirs with its next claim (``exchange``).

The hot paths read nothing per job: a claim takes job ids from Redis (one Lua
call), their states from the payload cache (one ``MGET``; misses from the log
in one query), and appends every ``attempted`` in one transaction.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy.engine import Engine

from ledger.append_sql import WriteLimits
from ledger.claim_plan import outcome_rounds, plan_claim
from ledger.claims import ClaimBatch, ClaimedJob, Outcome, OutcomeResult, logged_request
from ledger.db import create_engine
from ledger.decisions import (
    completion_events,
    dlq_requeue_event,
    failure_events,
    placement,
)
from ledger.errors import (
    DatabaseRefused,
    DatabaseUnavailable,
    JobNotFound,
    LedgerError,
    NotInDeadLetterQueue,
    QueueUnavailable,
    StaleAttempt,
)
from ledger.events import NewEvent
from ledger.group_commit import GroupCommit
from ledger.lifecycle import Job, JobStatus, apply, fold
from ledger.log_reader import LogReader
from ledger.operating import Operating, OperatorCommands
from ledger.ports import EventLog, WorkQueue
from ledger.queue.connect import build_queue
from ledger.relay import Relay, RelayReport
from ledger.repair import QueueRepair, folded
from ledger.request import SettlementRequest
from ledger.retry import RetryPolicy
from ledger.settings import Settings
from ledger.settling import SettlementCommands, Settling
from ledger.store import (
    EnqueueResult,
    EventStore,
    PreparedEnqueue,
    StreamAppend,
    prepare_enqueue,
)

log = logging.getLogger("ledger.service")

#: the most single enqueues one shared commit takes (the rest wait for the next)
GROUP_COMMIT_MAX = 100


@dataclass
class Ledger(SettlementCommands, OperatorCommands):
    """Write-side operations on settlement jobs. Build it with ``build_ledger``.

    It stands on two ports (``ledger.ports``): ``store``, the log, and ``queue``,
    the hot queue; a unit test passes in-memory ones. ``reader`` is the log's SQL
    reader on ``engine``, for the read side (projections, audit pages).
    """

    settings: Settings
    engine: Engine
    store: EventLog
    queue: WorkQueue
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    relay: Relay = field(init=False)
    repairs: QueueRepair = field(init=False)
    reader: LogReader = field(init=False)
    #: single ``enqueue`` calls of concurrent threads, committed in shared transactions
    _group: GroupCommit[PreparedEnqueue, EnqueueResult] = field(init=False, repr=False)
    settling: Settling = field(init=False)
    operating: Operating = field(init=False)

    def __post_init__(self) -> None:
        self.reader = self.store if isinstance(self.store, LogReader) else LogReader(self.engine)
        self.relay = Relay(self.store, self.queue, grace_seconds=self.settings.relay_grace_seconds)
        self.repairs = QueueRepair(self.store, self.queue, self.policy, self.rng, self.relay)
        self._group = GroupCommit(
            self._write_group, after=self._push_group, max_batch=GROUP_COMMIT_MAX
        )
        self.settling = Settling(self.store, self.repairs, self.policy, self.rng)
        self.operating = Operating(self.store, self.relay)

    # -- enqueue -----------------------------------------------------------------

    def enqueue(
        self,
        request: SettlementRequest,
        *,
        delay: timedelta | None = None,
        max_attempts: int | None = None,
        actor: str = "service",
    ) -> EnqueueResult:
        """Append ``enqueued`` (idempotent per key), then push the new job to Redis.

        Concurrent calls (threads of one process, requests of one ``serve``
        worker) share transactions (``ledger.group_commit``): a call that finds
        the log's writer idle commits at once; calls that arrive meanwhile go
        into the next commit together. Each call still gets its own outcome: an
        ``IdempotencyConflict`` or a refused request fails only its own call, a
        database outage each call of that commit.

        If Redis is away or refuses the push after the commit, the job is still
        enqueued (the log is the truth): the result says ``queued=False`` and the
        relay's sweep pushes it once Redis takes writes again. The caller is told
        the job exists, never that it failed (invariant 11).
        """
        prepared = prepare_enqueue(
            request,
            max_attempts=max_attempts or self.settings.default_max_attempts,
            delay=delay,
            actor=actor,
        )
        return self._group.submit(prepared)

    def enqueue_many(
        self,
        requests: Sequence[SettlementRequest],
        *,
        delay: timedelta | None = None,
        max_attempts: int | None = None,
        actor: str = "service",
    ) -> list[EnqueueResult]:
        """``enqueue`` for a batch: one SQL transaction, then one Redis push for the new jobs.

        All or nothing: one conflicting key raises ``IdempotencyConflict`` and
        nothing is enqueued.
        """
        results = self.store.enqueue_many(
            requests,
            max_attempts=max_attempts or self.settings.default_max_attempts,
            delay=delay,
            actor=actor,
        )
        return self._push_new(results)

    def _write_group(self, group: Sequence[PreparedEnqueue]) -> list[EnqueueResult | LedgerError]:
        """One commit for the requests of concurrent ``enqueue`` calls (``GroupCommit``)."""
        try:
            return list(self.store.enqueue_each(group))
        except DatabaseRefused:
            if len(group) == 1:
                raise
        # the database refused the transaction (a request it will not take, a read-only
        # connection): each request alone, so only the one it refuses fails
        outcomes: list[EnqueueResult | LedgerError] = []
        for prepared in group:
            try:
                outcomes.extend(self.store.enqueue_each([prepared]))
            except LedgerError as error:
                outcomes.append(error)
        return outcomes

    def _push_group(
        self, outcomes: Sequence[EnqueueResult | Exception]
    ) -> list[EnqueueResult | Exception]:
        """After a group's commit: push its new jobs (never fails a committed job's caller)."""
        results = [outcome for outcome in outcomes if isinstance(outcome, EnqueueResult)]
        pushed = iter(self._push_new(results))
        return [next(pushed) if isinstance(o, EnqueueResult) else o for o in outcomes]

    def _push_new(self, results: list[EnqueueResult]) -> list[EnqueueResult]:
        """Push the jobs ``results`` created; ``queued=False`` for them if Redis refuses."""
        jobs = [apply(None, r.event) for r in results if r.created and r.event is not None]
        if jobs:
            try:
                self.queue.push([(job.job_id, placement(job)[1]) for job in jobs], jobs)
            except QueueUnavailable as error:
                log.warning(
                    "%d jobs enqueued but not queued yet (%s); the sweep queues them "
                    "when Redis takes writes again",
                    len(jobs),
                    error.message,
                )
                return [replace(r, queued=False) if r.created else r for r in results]
        return results

    # -- claiming ----------------------------------------------------------------

    def claim(self, worker_id: str, n: int, lease: timedelta) -> list[ClaimedJob]:
        """Lease up to ``n`` jobs and record ``attempted`` for each (one transaction)."""
        return self.claim_batch(worker_id, n, lease).jobs

    def claim_batch(self, worker_id: str, n: int, lease: timedelta) -> ClaimBatch:
        """``claim``, also saying when the next delayed job falls due (for the idle wait)."""
        return self.exchange(worker_id, [], n, lease)[1]

    def exchange(
        self, worker_id: str, outcomes: Sequence[Outcome], n: int, lease: timedelta
    ) -> tuple[list[OutcomeResult], ClaimBatch]:
        """Record ``outcomes`` and claim up to ``n`` more jobs in one SQL transaction.

        A worker's steady state: the outcomes of one batch and the ``attempted``
        events of the next share one append (one lock, one commit). Each part
        keeps its own rules: stale outcomes are refused, claims the log refuses
        are repaired. If Redis cannot be reached the outcomes are still recorded.
        """
        rounds = list(outcome_rounds(outcomes)) or [[]]
        results: dict[int, OutcomeResult] = {}
        for batch in rounds[:-1]:  # a job with two outcomes in one call: rare
            results.update(self._exchange_round(worker_id, batch, 0, lease)[0])
        last, claimed = self._exchange_round(worker_id, rounds[-1], n, lease)
        results.update(last)
        return [results[index] for index in range(len(outcomes))], claimed

    def _exchange_round(
        self, worker_id: str, batch: list[tuple[int, Outcome]], n: int, lease: timedelta
    ) -> tuple[dict[int, OutcomeResult], ClaimBatch]:
        outcome_states = {o.job.id: o.job.state for _, o in batch}
        plan = plan_claim(self.queue, self._states, worker_id, n, lease, busy=outcome_states.keys())
        appends = [
            StreamAppend(o.job.id, o.job.state.version, self._outcome_events(o)) for _, o in batch
        ]
        result = self.store.append_many(appends + plan.appends, skip_stale=True)
        recorded = [e for e in result.events if e.job_id in outcome_states]
        attempted = [e for e in result.events if e.job_id not in outcome_states]
        after = folded(outcome_states, recorded)
        self.repairs.reflect_quietly(list(after.values()))
        # the payload cache keeps the waiting state it was pushed with: nothing reads a
        # claimed job's entry (outcomes carry their state, the reaper reads the log)
        claimed = [
            ClaimedJob(job, plan.lease_until, logged_request(job.request))
            for job in folded(plan.states, attempted).values()
        ]
        stale = [e.job_id for e in result.rejected if e.job_id in outcome_states]
        # after the commit nothing may fail the call: its outcomes and claims stand
        unclaimed = [e.job_id for e in result.rejected if e.job_id not in stale]
        self.repairs.repair_quietly(plan.repair + unclaimed)
        current = self._current_attempts(stale)
        out: dict[int, OutcomeResult] = {}
        for index, o in batch:
            if o.job.id in after:
                out[index] = OutcomeResult(o.job.id, o.job.attempt, state=after[o.job.id])
            else:
                refused = StaleAttempt(o.job.id, o.job.attempt, current.get(o.job.id))
                out[index] = OutcomeResult(o.job.id, o.job.attempt, refused=refused)
        return out, ClaimBatch(claimed, plan.now, plan.next_due, paused=plan.paused)

    def renew(self, jobs: Sequence[ClaimedJob], lease: timedelta) -> list[str]:
        """Extend the leases of running jobs (Redis only); returns ids whose lease was lost.

        Renewals are not logged: the log records the lease granted at the claim,
        and the reaper goes by Redis' deadline.
        """
        if not jobs:
            return []
        return self.queue.renew([job.id for job in jobs], int(lease.total_seconds() * 1000))

    # -- outcomes ----------------------------------------------------------------

    def complete(self, job: ClaimedJob | str, attempt: int) -> Job:
        """Record that ``attempt`` succeeded, or raise ``StaleAttempt``."""
        return self._one(Outcome(self._held(job, attempt)))

    def fail(
        self, job: ClaimedJob | str, attempt: int, reason: str, *, retryable: bool = True
    ) -> Job:
        """Record that ``attempt`` failed: requeue after backoff, or dead-letter.

        Dead-letters when the error is not retryable or the attempts since the
        last (re)queue reached ``max_attempts``. Raises ``StaleAttempt``.
        """
        return self._one(Outcome(self._held(job, attempt), reason, retryable))

    def record(self, outcomes: Sequence[Outcome]) -> list[OutcomeResult]:
        """Record many outcomes, one SQL transaction per batch; stale ones are refused."""
        if not outcomes:
            return []
        return self.exchange("", outcomes, 0, timedelta(0))[0]

    def _outcome_events(self, outcome: Outcome) -> list[NewEvent]:
        held = outcome.job
        if outcome.error is None:
            confirm_within = timedelta(seconds=self.settings.confirm_within_seconds)
            return completion_events(
                held.state,
                held.attempt,
                held.worker_id,
                outcome.result,
                confirm_within=confirm_within,
            )
        return failure_events(
            held.state,
            held.attempt,
            outcome.error,
            retryable=outcome.retryable,
            actor=held.worker_id,
            policy=self.policy,
            rng=self.rng,
        )

    def _one(self, outcome: Outcome) -> Job:
        (result,) = self.record([outcome])
        if result.refused is not None:
            raise result.refused
        assert result.state is not None
        return result.state

    def _held(self, job: ClaimedJob | str, attempt: int) -> ClaimedJob:
        """The attempt an outcome is for; a job id is looked up in the log."""
        if isinstance(job, ClaimedJob):
            if job.attempt != attempt:
                raise StaleAttempt(job.id, attempt, job.attempt)
            return job
        state = self._read_state(job)
        if state.status is not JobStatus.PROCESSING or state.attempts != attempt:
            raise StaleAttempt(job, attempt, state.attempts)
        lease_until = state.lease_until or state.updated_at
        return ClaimedJob(state, lease_until, logged_request(state.request))

    # -- operators ---------------------------------------------------------------

    def requeue_from_dlq(self, job_id: str, *, actor: str, reason: str) -> Job:
        """Requeue a dead-lettered job (due now, a fresh attempt budget)."""
        job = self._read_state(job_id)
        if job.status is not JobStatus.DEAD:
            raise NotInDeadLetterQueue(job_id, job.status.value)
        (event,) = self.store.append(job_id, job.version, [dlq_requeue_event(actor, reason)])
        requeued = apply(job, event)
        self.repairs.reflect_quietly([requeued])
        return requeued

    def job(self, job_id: str) -> Job:
        """A job's current state, folded from the log."""
        return self._read_state(job_id)

    # -- repair (ledger.repair) ---------------------------------------------------

    def reap(self, limit: int = 500) -> int:
        """Jobs whose lease expired: ``failed(lease expired)``, then requeued or dead-lettered."""
        return self.repairs.reap(limit)

    def recover(self) -> RelayReport:
        """Rebuild the hot queue from the log: every unfinished job's last event (idempotent)."""
        return self.repairs.recover()

    def sweep(self) -> RelayReport:
        """Push what the log changed and Redis still lacks (recovers if Redis was flushed)."""
        return self.repairs.sweep()

    def cleanup(self) -> int:
        """Drop payload cache entries of jobs no longer queued; events are never deleted."""
        return self.repairs.cleanup()

    # -- reading state -----------------------------------------------------------------

    def _states(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """Cached states, falling back to the log (one read) for misses."""
        states = self.queue.cached(job_ids)
        missing = [job_id for job_id in job_ids if job_id not in states]
        if missing:
            states.update(self.repairs.log_states(missing))
        return states

    def _log_state(self, job_id: str) -> Job | None:
        return fold(self.store.read_stream(job_id))

    def _read_state(self, job_id: str) -> Job:
        job = self._log_state(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _current_attempts(self, job_ids: Sequence[str]) -> dict[str, int]:
        """For the message of a refused outcome only: unknown when the log cannot be read."""
        if not job_ids:
            return {}
        try:
            states = self.repairs.log_states(job_ids)
        except DatabaseUnavailable:
            return {}
        return {job_id: job.attempts for job_id, job in states.items()}

    def close(self) -> None:
        self.engine.dispose()
        self.queue.close()


def build_ledger(settings: Settings) -> Ledger:
    """Wire a ledger from settings (explicitly; no globals)."""
    engine = create_engine(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_busy_timeout=settings.sqlite_busy_timeout_seconds,
    )
    policy = RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds)
    limits = WriteLimits(
        lock_ms=_ms(settings.db_lock_timeout_seconds),
        statement_ms=_ms(settings.db_statement_timeout_seconds),
        idle_ms=_ms(settings.db_idle_timeout_seconds),
    )
    return Ledger(
        settings=settings,
        engine=engine,
        store=EventStore(engine, limits=limits),
        queue=build_queue(settings),
        policy=policy,
    )


def _ms(seconds: float) -> int:
    """Seconds as whole milliseconds; a positive value never rounds down to 0 (no limit)."""
    return max(round(seconds * 1000), 1) if seconds > 0 else 0


__all__ = [
    "ClaimBatch",
    "ClaimedJob",
    "Ledger",
    "Outcome",
    "OutcomeResult",
    "build_ledger",
]
