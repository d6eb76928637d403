"""``Ledger.exchange``: a batch's outcomes and the next claim in one transaction.

Runs on SQLite + fakeredis (the embedded default) and PostgreSQL + Redis.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.errors import QueueUnavailable
from ledger.events import EventType
from ledger.lifecycle import JobStatus
from ledger.service import Ledger, Outcome
from tests.factories import request
from tests.queue_fixtures import delete_queue_keys, holds, on_stacks, summarise

LEASE = timedelta(seconds=30)

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis"), ("postgres", "cluster")])


def enqueue(ledger: Ledger, count: int) -> list[str]:
    return [ledger.enqueue(request(idempotency_key=f"k{n}")).job_id for n in range(count)]


def test_outcomes_and_the_next_claim_share_one_append(ledger: Ledger) -> None:
    ids = enqueue(ledger, 4)
    first = ledger.claim("w1", 2, LEASE)
    outcomes = [Outcome(first[0]), Outcome(first[1], "boom")]
    results, claimed = ledger.exchange("w1", outcomes, 5, LEASE)
    assert [r.state.status for r in results if r.state] == [JobStatus.COMPLETED, JobStatus.WAITING]
    assert {job.id for job in claimed.jobs} == set(ids[2:])
    assert all(job.attempt == 1 and job.worker_id == "w1" for job in claimed.jobs)
    tail = [e for e in ledger.store.read_all() if e.type is not EventType.ENQUEUED][2:]
    # completed, failed, requeued and two attempted: one batch, one time stamp
    assert len(tail) == 5 and len({e.occurred_at for e in tail}) == 1
    assert holds(ledger.queue, first[0].id) is None
    summary = summarise(ledger.store)
    assert summary.duplicated == {}


def test_a_stale_outcome_is_refused_and_the_claim_still_happens(ledger: Ledger) -> None:
    stale_id, other = enqueue(ledger, 2)
    (held,) = ledger.claim("w1", 1, LEASE)
    ledger.fail(held, held.attempt, "lease expired")  # as the reaper would
    results, claimed = ledger.exchange("w1", [Outcome(held)], 1, LEASE)
    assert results[0].refused is not None and results[0].state is None
    # the other job, or the refused one again once its (fast, in tests) backoff passed
    assert len(claimed.jobs) == 1 and claimed.jobs[0].id in (stale_id, other)
    assert summarise(ledger.store).duplicated == {}


def test_a_job_claimed_while_its_outcome_is_recorded_is_repaired(ledger: Ledger) -> None:
    (job_id,) = enqueue(ledger, 1)
    (held,) = ledger.claim("w1", 1, LEASE)
    ledger.queue.move([(job_id, 0)])  # a second copy in ready, as a lost lease would leave
    results, claimed = ledger.exchange("w1", [Outcome(held)], 5, LEASE)
    assert results[0].state is not None and results[0].state.status is JobStatus.COMPLETED
    assert claimed.jobs == []
    assert holds(ledger.queue, job_id) is None
    assert [e.type for e in ledger.store.read_stream(job_id)] == [
        EventType.ENQUEUED,
        EventType.ATTEMPTED,
        EventType.COMPLETED,
    ]


def test_outcomes_are_recorded_when_redis_cannot_claim(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue(ledger, 2)
    (held,) = ledger.claim("w1", 1, LEASE)

    def down(*_args: object) -> object:
        raise QueueUnavailable("Redis cannot be reached: test")

    monkeypatch.setattr(ledger.queue, "claim", down)
    results, claimed = ledger.exchange("w1", [Outcome(held)], 5, LEASE)
    assert results[0].state is not None and results[0].state.status is JobStatus.COMPLETED
    assert claimed.jobs == []
    with pytest.raises(QueueUnavailable):
        ledger.exchange("w1", [], 5, LEASE)  # a bare claim still says Redis is down


def test_claims_after_a_flush_read_the_states_from_the_log(ledger: Ledger) -> None:
    ids = enqueue(ledger, 3)
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)  # cache entries too
    assert ledger.recover().pushed == 3
    claimed = ledger.claim("w1", 5, LEASE)
    assert sorted(job.id for job in claimed) == sorted(ids)
    assert all(job.request.idempotency_key.startswith("k") for job in claimed)
