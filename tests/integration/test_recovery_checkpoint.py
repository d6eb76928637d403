"""Recovery from the relay's checkpoint: the same queue as a walk of the whole log.

The first recovery walks the log and leaves a checkpoint (the unfinished jobs as
of the head it read); the next reads those jobs and the log after that position
only. Whatever happened in between, Redis must end up holding exactly what a
full walk would put there.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.service import Ledger
from ledger.store import LiveCheckpoint
from tests.factories import request
from tests.queue_fixtures import delete_queue_keys, holds, on_stacks

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])
LEASE = timedelta(seconds=30)


def enqueue(ledger: Ledger, key: str, **kwargs: object) -> str:
    return ledger.enqueue(request(idempotency_key=key), **kwargs).job_id  # type: ignore[arg-type]


def claim(ledger: Ledger, n: int = 1) -> list[str]:
    return [job.id for job in ledger.claim("w1", n, LEASE)]


def test_a_recovery_from_the_checkpoint_puts_back_what_a_walk_would(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ledger.recover()  # an empty log: a walk, then the checkpoint at the head
    checkpoint = ledger.store.live_checkpoint()
    assert checkpoint is None or checkpoint.job_ids == []
    running = enqueue(ledger, "running")
    (running,) = claim(ledger)
    finishing = enqueue(ledger, "finishing")
    ledger.complete(ledger.claim("w1", 1, LEASE)[0], 1)  # done before the recovery
    dead = enqueue(ledger, "dead", max_attempts=1)
    (claimed_dead,) = ledger.claim("w1", 1, LEASE)
    ledger.fail(claimed_dead, 1, "boom")
    waiting = enqueue(ledger, "waiting")
    stays = enqueue(ledger, "stays", delay=timedelta(hours=1))
    walked = ledger.recover()
    assert walked.live == 4  # running, dead, waiting, stays (delayed)
    checkpoint = ledger.store.live_checkpoint()
    assert checkpoint is not None and checkpoint.position > first.position
    assert sorted(checkpoint.job_ids) == sorted([running, dead, waiting, stays])

    # after the checkpoint: finish one, requeue the dead one, claim one, add two
    (held,) = [job for job in ledger.claim("w1", 5, LEASE) if job.id == waiting]
    ledger.complete(held, 1)
    fresh = enqueue(ledger, "fresh")
    (fresh_running,) = [job.id for job in ledger.claim("w1", 5, LEASE)]
    ledger.requeue_from_dlq(dead, actor="op", reason="fixed")
    newest = enqueue(ledger, "newest")
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)  # Redis lost it all

    walks: list[int] = []
    real_walk = ledger.store.unfinished
    monkeypatch.setattr(
        ledger.store, "unfinished", lambda *a, **k: walks.append(1) or real_walk(*a, **k)
    )
    report = ledger.recover()
    assert walks == []  # read from the checkpoint and the tail, not by walking the log
    assert report.live == len(real_walk(0, 10**6)) == 5
    assert holds(ledger.queue, running) == "inflight"
    assert holds(ledger.queue, fresh_running) == "inflight" and fresh_running == fresh
    assert holds(ledger.queue, dead) == "ready"  # requeued after the checkpoint
    assert holds(ledger.queue, stays) == "delayed"
    assert holds(ledger.queue, newest) == "ready"
    assert holds(ledger.queue, waiting) is None  # completed after the checkpoint
    assert holds(ledger.queue, finishing) is None
    moved = ledger.store.live_checkpoint()
    assert moved is not None and moved.position == report.position
    assert sorted(moved.job_ids) == sorted([running, fresh, dead, stays, newest])


def test_a_checkpoint_ahead_of_the_log_is_ignored(ledger: Ledger) -> None:
    """A log restored from an older backup than its checkpoint: walk it instead."""
    job = enqueue(ledger, "k")
    ledger.store.save_live_checkpoint(10**9, [])
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)
    report = ledger.recover()
    assert report.live == 1
    assert holds(ledger.queue, job) == "ready"
    assert ledger.store.live_checkpoint() == LiveCheckpoint(report.position, [job])
