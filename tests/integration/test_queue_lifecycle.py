"""The Ledger service end to end: SQL first, then Redis; every history a legal fold.

Runs on three stacks: SQLite + fakeredis (the embedded default), SQLite + Redis
and PostgreSQL + Redis (production).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ledger.errors import JobNotFound, NotInDeadLetterQueue, StaleAttempt
from ledger.events import EventType
from ledger.health import check_health
from ledger.lifecycle import JobStatus
from ledger.service import ClaimedJob, Ledger, Outcome
from tests.factories import request
from tests.queue_fixtures import delete_queue_keys, holds, on_stacks, score, summarise, wait_until

STACKS = [
    ("sqlite", "fakeredis"),
    ("sqlite", "redis"),
    ("postgres", "redis"),
    ("postgres", "cluster"),
]
LEASE = timedelta(seconds=30)


# direct parametrization overrides the db_backend/redis_backend fixtures for this module
pytestmark = on_stacks(STACKS)


def enqueue(ledger: Ledger, key: str = "k1", **kwargs: object) -> str:
    return ledger.enqueue(request(idempotency_key=key), **kwargs).job_id  # type: ignore[arg-type]


def claim_one(ledger: Ledger, worker: str = "w1", lease: timedelta = LEASE) -> ClaimedJob:
    claimed = ledger.claim(worker, 1, lease)
    assert len(claimed) == 1
    return claimed[0]


def claim_eventually(ledger: Ledger, what: str) -> ClaimedJob:
    """Poll until a backoff delay passes (the delay itself is the policy's business)."""
    got: list[ClaimedJob] = []
    wait_until(lambda: got.extend(ledger.claim("w1", 1, LEASE)) or got, 10, what)
    return got[0]


def types(ledger: Ledger, job_id: str) -> list[str]:
    return [e.type.value for e in ledger.store.read_stream(job_id)]


def assert_legal_histories(ledger: Ledger) -> None:
    summary = summarise(ledger.store)  # folds every stream: raises on an illegal one
    assert summary.duplicated == {}


def test_success(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    assert holds(ledger.queue, job_id) == "ready"
    held = claim_one(ledger)
    assert (held.id, held.attempt, held.idempotency_key) == (job_id, 1, "k1")
    assert held.request.amount == 10_000
    assert holds(ledger.queue, job_id) == "inflight"
    done = ledger.complete(held, 1)
    assert done.status is JobStatus.COMPLETED
    assert types(ledger, job_id) == ["enqueued", "attempted", "completed"]
    attempted = ledger.store.read_stream(job_id)[1]
    assert attempted.actor == "w1"
    assert set(attempted.data) == {"attempt", "lease_until"}
    assert holds(ledger.queue, job_id) is None
    assert ledger.queue.cached([job_id]) == {}
    assert_legal_histories(ledger)


def test_idempotent_enqueue_pushes_once(ledger: Ledger) -> None:
    first = enqueue(ledger)
    again = ledger.enqueue(request(idempotency_key="k1"))
    assert (again.job_id, again.created) == (first, False)
    assert ledger.queue.depths().ready == 1


def test_enqueue_many_pushes_each_new_job_once(ledger: Ledger) -> None:
    first = enqueue(ledger)
    batch = [request(idempotency_key=f"b{n}") for n in range(5)]
    results = ledger.enqueue_many([*batch, request(idempotency_key="k1"), batch[0]])
    assert [r.created for r in results] == [True] * 5 + [False, False]
    assert results[5].job_id == first
    assert ledger.queue.depths().ready == 6
    claimed = ledger.claim("w", 10, LEASE)
    assert {job.id for job in claimed} == {first, *(r.job_id for r in results[:5])}


def test_transient_failure_then_success(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    held = claim_one(ledger)
    after = ledger.fail(held, 1, "gateway timeout")
    assert after.status is JobStatus.WAITING and after.due_at is not None
    requeued = ledger.store.read_stream(job_id)[-1]
    assert requeued.data["source"] == "retry" and requeued.data["due_at"]
    second = claim_eventually(ledger, "the retry to fall due")
    assert second.attempt == 2
    ledger.complete(second, 2)
    assert types(ledger, job_id) == [
        "enqueued",
        "attempted",
        "failed",
        "requeued",
        "attempted",
        "completed",
    ]
    assert_legal_histories(ledger)


def test_failures_until_dead_lettered(ledger: Ledger) -> None:
    job_id = enqueue(ledger, max_attempts=3)
    for attempt in (1, 2, 3):
        held = claim_eventually(ledger, f"attempt {attempt}")
        assert held.attempt == attempt
        state = ledger.fail(held, attempt, f"boom {attempt}")
    assert state.status is JobStatus.DEAD
    assert state.attempts == state.max_attempts == 3
    last = ledger.store.read_stream(job_id)[-1]
    assert (last.type, last.data) == (EventType.DEAD_LETTERED, {"attempt": 3, "reason": "boom 3"})
    assert holds(ledger.queue, job_id) is None
    assert ledger.claim("w1", 5, LEASE) == []
    assert_legal_histories(ledger)


def test_permanent_failure_dead_letters_at_once(ledger: Ledger) -> None:
    job_id = enqueue(ledger, max_attempts=5)
    held = claim_one(ledger)
    state = ledger.fail(held, 1, "account closed", retryable=False)
    assert state.status is JobStatus.DEAD and state.attempts == 1
    failed = ledger.store.read_stream(job_id)[2]
    assert failed.data == {"attempt": 1, "reason": "account closed", "retryable": False}


def test_requeue_from_dlq_then_success(ledger: Ledger) -> None:
    job_id = enqueue(ledger, max_attempts=1)
    ledger.fail(claim_one(ledger), 1, "boom")
    with pytest.raises(NotInDeadLetterQueue):
        ledger.requeue_from_dlq(enqueue(ledger, "other"), actor="ops", reason="x")
    with pytest.raises(JobNotFound):
        ledger.requeue_from_dlq("no-such-job", actor="ops", reason="x")
    state = ledger.requeue_from_dlq(job_id, actor="alice", reason="gateway fixed")
    assert state.status is JobStatus.WAITING and state.round_attempts == 0
    event = ledger.store.read_stream(job_id)[-1]
    assert event.actor == "alice"
    assert event.data == {"due_at": None, "reason": "gateway fixed", "source": "dlq"}
    held = next(j for j in ledger.claim("w1", 5, LEASE) if j.id == job_id)
    assert held.attempt == 2
    assert ledger.complete(held, 2).status is JobStatus.COMPLETED
    with pytest.raises(NotInDeadLetterQueue):
        ledger.requeue_from_dlq(job_id, actor="alice", reason="again")
    assert_legal_histories(ledger)


def test_delayed_job_is_claimable_only_after_its_due_time(ledger: Ledger) -> None:
    job_id = enqueue(ledger, delay=timedelta(seconds=1))
    due_at = ledger.job(job_id).due_at
    assert due_at is not None
    assert holds(ledger.queue, job_id) == "delayed"
    assert ledger.claim("w1", 5, LEASE) == []
    held = claim_eventually(ledger, "the delay to pass")
    assert held.id == job_id
    assert ledger.store.read_stream(job_id)[1].occurred_at >= due_at


def test_outcome_of_a_reaped_attempt_is_refused(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    held = claim_one(ledger, lease=timedelta(milliseconds=1))
    wait_until(lambda: ledger.reap() == 1, 10, "the lease to expire and be reaped")
    with pytest.raises(StaleAttempt) as refused:
        ledger.complete(held, 1)
    assert refused.value.attempt == 1
    with pytest.raises(StaleAttempt):
        ledger.complete(job_id, 1)
    failed = ledger.store.read_stream(job_id)[2]
    assert (failed.type, failed.actor, failed.data["reason"]) == (
        EventType.FAILED,
        "reaper",
        "lease expired",
    )
    second = claim_eventually(ledger, "the retry")
    ledger.complete(job_id, second.attempt)
    assert types(ledger, job_id).count("completed") == 1
    assert_legal_histories(ledger)


def test_reap_leaves_a_job_whose_worker_finished_first(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    held = claim_one(ledger, lease=timedelta(milliseconds=1))
    ledger.complete(held, 1)
    ledger.queue.restore([(job_id, 1)])  # a stale in-flight entry (say, a lost ack)
    wait_until(lambda: ledger.queue.depths().expired_leases == 1, 5, "expiry")
    assert ledger.reap() == 0
    assert holds(ledger.queue, job_id) is None
    assert types(ledger, job_id) == ["enqueued", "attempted", "completed"]


def test_batched_outcomes_one_stale(ledger: Ledger) -> None:
    ids = [enqueue(ledger, f"k{n}") for n in range(3)]
    held = ledger.claim("w1", 3, LEASE)
    assert sorted(j.id for j in held) == sorted(ids)
    ledger.complete(held[0], held[0].attempt)
    results = ledger.record([Outcome(held[0]), Outcome(held[1]), Outcome(held[2], "boom")])
    assert [r.recorded for r in results] == [False, True, True]
    assert results[0].refused is not None
    assert results[2].state is not None and results[2].state.status is JobStatus.WAITING
    assert_legal_histories(ledger)


def test_duplicate_delivery_is_claimed_once(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    first = claim_one(ledger, "w1")
    ledger.queue.move([(job_id, 0)])  # a second copy, as a buggy relay would push
    assert ledger.claim("w2", 1, LEASE) == []
    assert types(ledger, job_id) == ["enqueued", "attempted"]
    ledger.complete(first, 1)
    assert_legal_histories(ledger)


def test_racing_claimers_never_record_an_attempt_twice(ledger: Ledger) -> None:
    ids = {enqueue(ledger, f"k{n}") for n in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        for _ in range(20):
            got = ledger.claim(name, 3, LEASE)
            with lock:
                claimed.extend(j.id for j in got)
            for held in got:
                ledger.complete(held, held.attempt)
                ledger.queue.move([(held.id, 0)])  # re-deliver finished jobs: must be ignored

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while got := ledger.claim("w0", 50, LEASE):
        for held in got:
            ledger.complete(held, held.attempt)
        claimed.extend(j.id for j in got)
    assert sorted(claimed) == sorted(ids)
    summary = summarise(ledger.store)
    assert summary.lost == [] and summary.duplicated == {}
    assert set(summary.completions) == ids


def test_recover_rebuilds_the_queue_from_the_log(ledger: Ledger) -> None:
    enqueue(ledger, "running")
    running = claim_one(ledger)
    dead = enqueue(ledger, "dead", max_attempts=1)
    ledger.fail(claim_one(ledger), 1, "x")
    done = enqueue(ledger, "done")
    ledger.complete(claim_one(ledger), 1)
    waiting = enqueue(ledger, "waiting")
    delayed = enqueue(ledger, "delayed", delay=timedelta(hours=1))
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)

    report = ledger.recover()
    assert report.live == 4  # running, dead, waiting, delayed
    assert holds(ledger.queue, running.id) == "inflight"
    assert score(ledger.queue, running.id, "inflight") == _ms(running.lease_until)
    assert holds(ledger.queue, waiting) == "ready"
    assert holds(ledger.queue, delayed) == "delayed"
    assert holds(ledger.queue, dead) is None
    assert holds(ledger.queue, done) is None
    assert not ledger.queue.looks_flushed()
    again = ledger.recover()
    assert (again.pushed, again.restored) == (0, 0)
    # recover writes no payload cache: a claim reads the missing states from the log
    assert ledger.queue.cached([waiting, delayed]) == {}
    assert [held.id for held in ledger.claim("w1", 10, LEASE)] == [waiting]


def test_recover_puts_waiting_jobs_back_in_ready(ledger: Ledger) -> None:
    ids = {enqueue(ledger, f"k{n}") for n in range(5)}
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)
    assert ledger.claim("w1", 10, LEASE) == []
    assert ledger.recover().pushed == 5
    assert {j.id for j in ledger.claim("w1", 10, LEASE)} == ids


def test_sweep_pushes_what_a_crash_left_out(ledger: Ledger) -> None:
    ledger.recover()
    # the enqueue commits, then the process dies before its Redis push
    job_id = ledger.store.enqueue(request(idempotency_key="lost"), max_attempts=3).job_id
    assert holds(ledger.queue, job_id) is None
    report = ledger.sweep()
    assert report.pushed == 1
    assert holds(ledger.queue, job_id) == "ready"
    assert ledger.sweep().pushed == 0


def test_sweep_recovers_after_a_flush(ledger: Ledger) -> None:
    ledger.recover()
    job_id = enqueue(ledger)
    delete_queue_keys(ledger.queue.client, ledger.queue.keys.queue)
    report = ledger.sweep()
    assert report.recovered and report.pushed == 1
    assert holds(ledger.queue, job_id) == "ready"


def test_claim_repairs_a_stale_cache_entry(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    stale = ledger.queue.cached([job_id])[job_id]
    ledger.complete(claim_one(ledger), 1)
    ledger.queue.cache([stale])  # an old snapshot, as a lost write would leave
    ledger.queue.move([(job_id, 0)])
    assert ledger.claim("w1", 1, LEASE) == []
    assert holds(ledger.queue, job_id) is None
    assert types(ledger, job_id) == ["enqueued", "attempted", "completed"]


def test_health(ledger: Ledger) -> None:
    enqueue(ledger, "a")
    enqueue(ledger, "b", delay=timedelta(hours=1))
    health = check_health(ledger)
    assert health.ok and health.errors == []
    assert (health.depths.ready, health.depths.delayed) == (1, 1)  # type: ignore[union-attr]
    body = health.as_dict()
    assert body["logPosition"] == 2 and body["inFlight"] == 0 and body["expiredLeases"] == 0
    assert body["oldestWaitingSeconds"] is not None


def test_cleanup_drops_payloads_of_finished_jobs(ledger: Ledger) -> None:
    job_id = enqueue(ledger)
    held = claim_one(ledger)
    ledger.complete(held, 1)
    ledger.queue.cache([held.state])  # a leftover entry (the finish step was lost)
    assert ledger.cleanup() == 1
    assert ledger.queue.cached([job_id]) == {}


def _ms(moment: object) -> int:
    return int(moment.timestamp() * 1000)  # type: ignore[attr-defined]
