"""Random operation sequences against the service: every history in the log stays legal.

A seeded random walk over enqueue, claim, complete, fail (retryable or not), lease
expiry, DLQ requeue, duplicate delivery, Redis loss and recovery, and stale
outcomes. Afterwards every stream must fold (``lifecycle.fold`` raises on an
illegal one), no job may be completed twice, and draining must finish every job
that is not dead-lettered.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import timedelta

import pytest

from ledger.errors import StaleAttempt
from ledger.lifecycle import JobStatus
from ledger.service import ClaimedJob, Ledger
from tests.factories import request
from tests.queue_fixtures import delete_queue_keys, on_stacks, summarise, wait_until

STACKS = [("sqlite", "fakeredis"), ("postgres", "redis"), ("postgres", "cluster")]
LEASE = timedelta(seconds=30)


# direct parametrization overrides the db_backend/redis_backend fixtures for this module
pytestmark = on_stacks(STACKS)


class Walk:
    """The random walk's state: jobs held by the pretend workers, and old attempts."""

    def __init__(self, ledger: Ledger, rng: random.Random) -> None:
        self.ledger = ledger
        self.rng = rng
        self.held: list[ClaimedJob] = []
        self.finished: list[ClaimedJob] = []
        self.keys = 0

    def enqueue(self) -> None:
        self.keys += 1
        delay = timedelta(milliseconds=self.rng.choice([0, 0, 50]))
        self.ledger.enqueue(
            request(idempotency_key=f"k{self.keys}"),
            delay=delay or None,
            max_attempts=self.rng.randint(1, 3),
        )

    def claim(self) -> None:
        lease = timedelta(milliseconds=self.rng.choice([1, 30_000]))
        self.held += self.ledger.claim(f"w{self.rng.randint(1, 3)}", self.rng.randint(1, 3), lease)

    def complete(self) -> None:
        if self.held:
            self._settle(lambda job: self.ledger.complete(job, job.attempt))

    def fail(self) -> None:
        retryable = self.rng.random() < 0.8
        if self.held:
            self._settle(lambda job: self.ledger.fail(job, job.attempt, "x", retryable=retryable))

    def _settle(self, outcome: Callable[[ClaimedJob], object]) -> None:
        job = self.held.pop(self.rng.randrange(len(self.held)))
        with contextlib.suppress(StaleAttempt):  # reaped meanwhile: refusing is the point
            outcome(job)
        self.finished.append(job)

    def stale_outcome(self) -> None:
        if self.finished:
            job = self.rng.choice(self.finished)
            with pytest.raises(StaleAttempt):
                self.ledger.complete(job, job.attempt)

    def reap(self) -> None:
        self.ledger.reap()

    def requeue_dead(self) -> None:
        dead = [
            job_id
            for job_id, job in summarise(self.ledger.store).jobs.items()
            if job.status is JobStatus.DEAD
        ]
        if dead:
            self.ledger.requeue_from_dlq(self.rng.choice(dead), actor="ops", reason="retry")

    def redeliver(self) -> None:
        if self.held:
            self.ledger.queue.move([(self.rng.choice(self.held).id, 0)])

    def lose_redis(self) -> None:
        delete_queue_keys(self.ledger.queue.client, self.ledger.queue.keys.queue)
        self.ledger.sweep()  # notices the loss and recovers from the log


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walks_leave_only_legal_histories(ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    walk = Walk(ledger, rng)
    steps = [
        (walk.enqueue, 6),
        (walk.claim, 6),
        (walk.complete, 4),
        (walk.fail, 3),
        (walk.stale_outcome, 1),
        (walk.reap, 2),
        (walk.requeue_dead, 1),
        (walk.redeliver, 1),
        (walk.lose_redis, 1),
    ]
    actions = [action for action, weight in steps for _ in range(weight)]
    ledger.recover()
    for _ in range(300):
        rng.choice(actions)()

    # drain: settle what is held, then keep claiming until only the dead remain
    for job in walk.held:
        with contextlib.suppress(StaleAttempt):
            ledger.complete(job, job.attempt)

    def drained() -> bool:
        ledger.reap()
        for job in ledger.claim("drain", 50, LEASE):
            ledger.complete(job, job.attempt)
        jobs = summarise(ledger.store).jobs.values()
        return all(j.status in (JobStatus.COMPLETED, JobStatus.DEAD) for j in jobs)

    wait_until(drained, 60, "every job to finish", every=0.05)
    summary = summarise(ledger.store)  # folds every stream: an illegal history raises
    assert summary.duplicated == {}
    assert len(summary.jobs) == walk.keys
    for job_id, job in summary.jobs.items():
        if job.status is JobStatus.DEAD:
            failed = [e for e in ledger.store.read_stream(job_id) if e.type == "failed"][-1]
            assert job.round_attempts == job.max_attempts or failed.data["retryable"] is False
    events = list(ledger.store.read_all())
    # the walk did reach every corner it is meant to exercise
    assert {e.type.value for e in events} == {
        "enqueued",
        "attempted",
        "failed",
        "requeued",
        "dead_lettered",
        "completed",
    }
    assert any(e.data.get("reason") == "lease expired" for e in events)
    assert any(e.data.get("source") == "dlq" for e in events)
