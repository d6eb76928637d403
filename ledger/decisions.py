"""What the service appends and where Redis should hold a job: pure functions.

No IO, no clock, no RNG of their own (both are passed in). The legality of every
event is the lifecycle's transition table (``lifecycle.next_status``); this
module only chooses *which* legal event comes next.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import assert_never

from ledger.errors import IllegalTransition
from ledger.events import EventType, NewEvent, StoredEvent, format_time
from ledger.lifecycle import STATUS_AFTER_EVENT, Job, JobStatus, next_status
from ledger.provider import ProviderResult
from ledger.retry import RetryPolicy

LEASE_EXPIRED = "lease expired"


class Place(StrEnum):
    """Where the hot queue should hold a job, given its state in the log."""

    WAITING = "waiting"  # ready, or delayed until its due time
    INFLIGHT = "inflight"  # leased until the recorded deadline
    GONE = "gone"  # finished: not in Redis at all


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch: the score unit of every queue set."""
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def allows(job: Job, event_type: EventType) -> bool:
    """Does the transition table allow ``event_type`` in the job's state?"""
    try:
        next_status(job.job_id, job.status, event_type)
    except IllegalTransition:
        return False
    return True


def may_attempt(job: Job, now: datetime) -> bool:
    """A job may be attempted when it is waiting and due."""
    return allows(job, EventType.ATTEMPTED) and not job.is_delayed(now)


def attempt_event(job: Job, worker_id: str, lease_until: datetime) -> NewEvent:
    """``attempted``: the next attempt number, and the lease deadline the worker holds."""
    data = {"attempt": job.attempts + 1, "lease_until": format_time(lease_until)}
    return NewEvent(EventType.ATTEMPTED, data, actor=worker_id)


def completion_events(
    job: Job,
    attempt: int,
    actor: str,
    result: ProviderResult | None = None,
    *,
    confirm_within: timedelta,
) -> list[NewEvent]:
    """``completed`` with the round's amount and the provider's outcome; or, for a pending
    result, ``submitted``, due for a status look-up ``confirm_within`` from now."""
    outcome = {} if result is None else result.as_data()
    if result is not None and result.pending:
        data = {"attempt": attempt, "due_at": None, **outcome}
        return [NewEvent(EventType.SUBMITTED, data, actor=actor, due_in=confirm_within)]
    data = {"attempt": attempt, "amount": job.payable, **outcome}
    return [NewEvent(EventType.COMPLETED, data, actor=actor)]


def confirmation_event(job: Job, result: ProviderResult, *, actor: str, source: str) -> NewEvent:
    """``completed`` for a submitted payout the provider confirmed (webhook or poll)."""
    data = {"attempt": job.attempts, "amount": job.payable, "source": source}
    return NewEvent(EventType.COMPLETED, {**data, **result.as_data()}, actor=actor)


def cancel_event(actor: str, reason: str, result: ProviderResult | None = None) -> NewEvent:
    """An operator's cancel (with the provider's answer when the provider held the payout)."""
    data = {"reason": reason, **({} if result is None else result.as_data())}
    return NewEvent(EventType.CANCELLED, data, actor=actor)


def money_back_event(
    kind: EventType, amount: int, reason: str, actor: str, token: str | None
) -> NewEvent:
    """``reversed`` (``token`` is the provider's reference) or ``refunded`` (the caller's key)."""
    data: dict[str, object] = {"amount": amount, "reason": reason}
    if token is not None:
        data["reference" if kind is EventType.REVERSED else "key"] = token
    return NewEvent(kind, data, actor=actor)


def repay_event(job: Job, actor: str, reason: str) -> NewEvent:
    """A new payment round of what reversals took back and no later round paid again."""
    data = {
        "due_at": None,
        "reason": reason,
        "source": "repay",
        "round": job.round + 1,
        "amount": repayable(job),
    }
    return NewEvent(EventType.REQUEUED, data, actor=actor)


def repayable(job: Job) -> int:
    """What a new payment round would pay: reversed money the payee has not had again.

    Rounds pay what reversals took back; refunds are money the payee gave back
    on purpose and are never paid again. The net never exceeds the amount.
    """
    return max(0, min(job.reversed, job.amount - job.net))


def returnable(job: Job) -> int:
    """How much may still come back: what the payee kept (paid minus reversed and refunded)."""
    return job.net


def failure_events(
    job: Job,
    attempt: int,
    reason: str,
    *,
    retryable: bool,
    actor: str,
    policy: RetryPolicy,
    rng: random.Random,
) -> list[NewEvent]:
    """``failed``, then ``requeued`` after a backoff delay or ``dead_lettered``.

    ``job`` is the state the failure is appended to (the attempt in progress).
    The retry budget counts attempts since the last requeue from the dead-letter
    queue (``round_attempts``), so a requeued job gets ``max_attempts`` again.
    The delay is relative (``due_in``): the store turns it into ``due_at`` with the
    log's own clock.
    """
    failed = NewEvent(
        EventType.FAILED,
        {"attempt": attempt, "reason": reason, "retryable": retryable},
        actor=actor,
    )
    if RetryPolicy.should_retry(job.round_attempts, job.max_attempts, retryable=retryable):
        requeued = NewEvent(
            EventType.REQUEUED,
            {"due_at": None, "reason": reason, "source": "retry"},
            actor=actor,
            due_in=policy.delay(max(job.round_attempts, 1), rng),
        )
        return [failed, requeued]
    dead = NewEvent(EventType.DEAD_LETTERED, {"attempt": attempt, "reason": reason}, actor=actor)
    return [failed, dead]


def follow_up_events(
    job: Job, *, actor: str, policy: RetryPolicy, rng: random.Random
) -> list[NewEvent]:
    """For a job left in ``failed`` (never at rest in our own writes): requeue or dead-letter."""
    reason = job.last_error or "failed"
    events = failure_events(
        job, job.attempts, reason, retryable=True, actor=actor, policy=policy, rng=rng
    )
    return events[1:]


def dlq_requeue_event(actor: str, reason: str) -> NewEvent:
    """An operator's requeue from the dead-letter queue (due now, fresh attempt budget)."""
    data = {"due_at": None, "reason": reason, "source": "dlq"}
    return NewEvent(EventType.REQUEUED, data, actor=actor)


def place_of(status: JobStatus) -> Place:
    """Where Redis holds a job in ``status``.

    A job left in ``failed`` is held in flight with an expired lease, so the
    reaper picks it up and appends its follow-up; a dead-lettered job waits in
    the log (the DLQ view), not in Redis, and so does a payout the provider holds
    (``submitted``: a webhook or a poll confirms it).
    """
    match status:
        case JobStatus.WAITING:
            return Place.WAITING
        case JobStatus.PROCESSING | JobStatus.FAILED:
            return Place.INFLIGHT
        case JobStatus.DEAD | JobStatus.SUBMITTED | JobStatus.COMPLETED | JobStatus.CANCELLED:
            return Place.GONE
        case _:
            assert_never(status)


#: ``place_of`` for every status, looked up once per job on the hot paths
_PLACE: dict[JobStatus, Place] = {status: place_of(status) for status in JobStatus}


def placement(job: Job | None) -> tuple[Place, int]:
    """Where Redis should hold the job, and the score (due or lease deadline, ms; 0 = now)."""
    if job is None:
        return Place.GONE, 0
    place = _PLACE[job.status]
    if place is Place.WAITING:
        return place, to_ms(job.due_at) if job.due_at else 0
    if place is Place.INFLIGHT and job.status is JobStatus.PROCESSING and job.lease_until:
        return place, to_ms(job.lease_until)
    return place, 0


def placement_after(event: StoredEvent) -> tuple[Place, int]:
    """``placement`` of a job whose last event is ``event``, without folding its history.

    Where a job stands depends only on its last event: the status it leads to,
    and the due time (``enqueued``, ``requeued``) or lease deadline
    (``attempted``) it carries. Rebuilding the hot queue needs no more.
    """
    status = STATUS_AFTER_EVENT[event.type]
    place = _PLACE[status]
    if place is Place.WAITING:
        due = event.data.get("due_at")
        return place, to_ms(_parse(due)) if due else 0
    if place is Place.INFLIGHT and status is JobStatus.PROCESSING:
        lease = event.data.get("lease_until")
        return place, to_ms(_parse(lease)) if lease else 0
    return place, 0


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
