"""The job lifecycle: states, the one transition table, and the fold of events into a job.

Pure: no IO, no clock. Every writer and every projection uses this module, so
the log can only ever hold legal histories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, assert_never

from ledger.errors import IllegalTransition
from ledger.events import EventType, Moment, StoredEvent, as_time, is_operator_event, required_time


class JobStatus(StrEnum):
    """Where a job stands. ``waiting`` with a future due time is shown as ``delayed``."""

    WAITING = "waiting"
    PROCESSING = "processing"
    FAILED = "failed"
    DEAD = "dead"
    #: the provider accepted the payout and has not confirmed it yet (out of the hot queue)
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    #: stopped by an operator before it was paid: terminal
    CANCELLED = "cancelled"


#: (state before, event) → state after. Anything not listed is illegal.
TRANSITIONS: Mapping[tuple[JobStatus | None, EventType], JobStatus] = {
    (None, EventType.ENQUEUED): JobStatus.WAITING,
    (JobStatus.WAITING, EventType.ATTEMPTED): JobStatus.PROCESSING,
    (JobStatus.PROCESSING, EventType.COMPLETED): JobStatus.COMPLETED,
    (JobStatus.PROCESSING, EventType.SUBMITTED): JobStatus.SUBMITTED,
    (JobStatus.PROCESSING, EventType.FAILED): JobStatus.FAILED,
    (JobStatus.SUBMITTED, EventType.COMPLETED): JobStatus.COMPLETED,
    (JobStatus.SUBMITTED, EventType.FAILED): JobStatus.FAILED,
    (JobStatus.FAILED, EventType.REQUEUED): JobStatus.WAITING,
    (JobStatus.FAILED, EventType.DEAD_LETTERED): JobStatus.DEAD,
    (JobStatus.DEAD, EventType.REQUEUED): JobStatus.WAITING,
    # a new payment round of a reversed amount (``decisions.repay_event``)
    (JobStatus.COMPLETED, EventType.REQUEUED): JobStatus.WAITING,
    # an operator's cancel: before an attempt, between attempts, from the DLQ, or through
    # the provider while it holds the payout (never while a worker holds an attempt)
    (JobStatus.WAITING, EventType.CANCELLED): JobStatus.CANCELLED,
    (JobStatus.FAILED, EventType.CANCELLED): JobStatus.CANCELLED,
    (JobStatus.DEAD, EventType.CANCELLED): JobStatus.CANCELLED,
    (JobStatus.SUBMITTED, EventType.CANCELLED): JobStatus.CANCELLED,
    # money coming back after the payout: the job stays completed, its money fields move
    (JobStatus.COMPLETED, EventType.REVERSED): JobStatus.COMPLETED,
    (JobStatus.COMPLETED, EventType.REFUNDED): JobStatus.COMPLETED,
}


def is_terminal(status: JobStatus) -> bool:
    """Whether the job is finished with the queue: no worker or provider will move it again.

    Only an operator's money record (a reversal, a refund, a new payment round) may
    follow ``completed``; nothing follows ``cancelled``.
    """
    match status:
        case JobStatus.COMPLETED | JobStatus.CANCELLED:
            return True
        case JobStatus.WAITING | JobStatus.PROCESSING | JobStatus.SUBMITTED:
            return False
        case JobStatus.FAILED | JobStatus.DEAD:
            return False
        case _:
            assert_never(status)


TERMINAL = frozenset(status for status in JobStatus if is_terminal(status))

#: the state each event leaves a job in (the table's targets depend on the event alone)
STATUS_AFTER_EVENT: Mapping[EventType, JobStatus] = {
    event: after for (_, event), after in TRANSITIONS.items()
}

#: ``TRANSITIONS`` keyed and valued by plain strings: the same table, for folds that
#: look it up once per event (hashing an enum member is a Python-level call)
STATUS_AFTER: Mapping[tuple[str | None, str], str] = {
    (None if before is None else before.value, event.value): after.value
    for (before, event), after in TRANSITIONS.items()
}


def next_status(job_id: str, current: JobStatus | None, event_type: EventType) -> JobStatus:
    """The state after ``event_type``, or ``IllegalTransition``."""
    try:
        return TRANSITIONS[(current, event_type)]
    except KeyError:
        raise IllegalTransition(job_id, current, event_type) from None


@dataclass(frozen=True, slots=True)
class Job:
    """A job's current state, folded from its events."""

    job_id: str
    status: JobStatus
    version: int
    request: Mapping[str, Any]
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None = None
    #: every attempt ever made, the number an outcome must quote
    attempts: int = 0
    #: attempts since the job was (re)queued from the DLQ; the retry budget counts these
    round_attempts: int = 0
    worker: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    dead_lettered_at: datetime | None = None
    completed_at: datetime | None = None
    #: the payment round (1, then one more per ``repay``), and what this round pays
    #: (``None``: the job's amount)
    round: int = 1
    round_amount: int | None = None
    #: minor units paid (every round's ``completed``), returned by the provider, refunded
    paid: int = 0
    reversed: int = 0
    refunded: int = 0
    #: the provider's last word on the payout: its id, fee (minor units) and status
    reference: str | None = None
    fee: int | None = None
    provider_status: str | None = None

    @property
    def idempotency_key(self) -> str:
        return str(self.request["idempotency_key"])

    @property
    def amount(self) -> int:
        return int(self.request["amount"])

    @property
    def currency(self) -> str:
        return str(self.request["currency"])

    @property
    def net(self) -> int:
        """What the payee kept: paid minus reversed minus refunded."""
        return self.paid - self.reversed - self.refunded

    @property
    def payable(self) -> int:
        """What the current round pays."""
        return self.amount if self.round_amount is None else self.round_amount

    def is_delayed(self, now: datetime) -> bool:
        return self.status is JobStatus.WAITING and self.due_at is not None and self.due_at > now


@dataclass(slots=True)
class Progress:
    """What a job's events after ``enqueued`` change, as one mutable record.

    The one place the lifecycle's field rules live: ``advance`` moves it along,
    ``apply`` wraps it for the frozen ``Job``, and the projections fold millions
    of events through it without building an object per event.
    """

    job_id: str
    status: str
    version: int
    updated_at: Moment
    due_at: Moment | None = None
    attempts: int = 0
    round_attempts: int = 0
    worker: str | None = None
    lease_until: Moment | None = None
    last_error: str | None = None
    dead_lettered_at: Moment | None = None
    completed_at: Moment | None = None
    #: the job's amount (from ``enqueued``), and the money fields of ``Job``
    amount: int = 0
    round: int = 1
    round_amount: int | None = None
    paid: int = 0
    reversed: int = 0
    refunded: int = 0
    reference: str | None = None
    fee: int | None = None
    provider_status: str | None = None

    def job_with(self, *, request: Mapping[str, Any], max_attempts: int, created_at: Moment) -> Job:
        """The frozen ``Job`` of this progress, given the fixed fields of its ``enqueued``."""
        return Job(
            job_id=self.job_id,
            status=JobStatus(self.status),
            version=self.version,
            request=request,
            max_attempts=max_attempts,
            created_at=required_time(created_at),
            updated_at=required_time(self.updated_at),
            due_at=as_time(self.due_at),
            attempts=self.attempts,
            round_attempts=self.round_attempts,
            worker=self.worker,
            lease_until=as_time(self.lease_until),
            last_error=self.last_error,
            dead_lettered_at=as_time(self.dead_lettered_at),
            completed_at=as_time(self.completed_at),
            round=self.round,
            round_amount=self.round_amount,
            paid=self.paid,
            reversed=self.reversed,
            refunded=self.refunded,
            reference=self.reference,
            fee=self.fee,
            provider_status=self.provider_status,
        )


def advance(
    state: Progress,
    event_type: str,
    version: int,
    occurred_at: Moment,
    actor: str,
    data: Mapping[str, Any],
) -> None:
    """Fold one event (not ``enqueued``) into ``state`` in place.

    ``IllegalTransition`` if the lifecycle forbids it (``state`` is then unchanged).
    Times from ``data`` are carried as they are (see ``Moment``).
    """
    before = state.status
    move = _MOVES.get((before, event_type))
    if move is None:
        raise IllegalTransition(state.job_id, JobStatus(before), EventType(event_type))
    state.status, step = move
    state.version = version
    state.updated_at = occurred_at
    step(state, before, occurred_at, actor, data)


#: what an event changes besides status, version and time: (state, status before,
#: occurred_at, actor, data)
Step = Callable[[Progress, str, Moment, str, Mapping[str, Any]], None]


def _attempted(state: Progress, _: str, __: Moment, actor: str, data: Mapping[str, Any]) -> None:
    state.attempts += 1
    state.round_attempts += 1
    state.worker = actor
    state.lease_until = data.get("lease_until")
    state.due_at = None


def _completed(state: Progress, _: str, at: Moment, __: str, data: Mapping[str, Any]) -> None:
    state.completed_at = at
    state.lease_until = None
    state.due_at = None
    paid = data.get("amount")
    state.paid += (
        int(paid)
        if paid is not None
        else state.amount
        if state.round_amount is None
        else state.round_amount
    )
    _provider_outcome(state, data)


def _submitted(state: Progress, _: str, __: Moment, ___: str, data: Mapping[str, Any]) -> None:
    # ``due_at`` is the confirmation deadline: past it the payout is overdue and polled
    state.lease_until = None
    state.due_at = data.get("due_at")
    _provider_outcome(state, data)


def _provider_outcome(state: Progress, data: Mapping[str, Any]) -> None:
    if "reference" in data:
        state.reference = data["reference"]
    if "fee" in data:
        state.fee = data["fee"]
    if "status" in data:
        state.provider_status = data["status"]


def _cancelled(state: Progress, _: str, __: Moment, ___: str, ____: Mapping[str, Any]) -> None:
    state.due_at = None
    state.worker = None
    state.lease_until = None
    state.dead_lettered_at = None


def _reversed(state: Progress, _: str, __: Moment, ___: str, data: Mapping[str, Any]) -> None:
    state.reversed += int(data.get("amount", 0))


def _refunded(state: Progress, _: str, __: Moment, ___: str, data: Mapping[str, Any]) -> None:
    state.refunded += int(data.get("amount", 0))


def _failed(state: Progress, _: str, __: Moment, ___: str, data: Mapping[str, Any]) -> None:
    state.last_error = data.get("reason")
    state.lease_until = None
    state.due_at = None


def _dead_lettered(state: Progress, _: str, at: Moment, __: str, ___: Mapping[str, Any]) -> None:
    state.dead_lettered_at = at
    state.worker = None


def _requeued(state: Progress, before: str, _: Moment, __: str, data: Mapping[str, Any]) -> None:
    # from a retry (keeps the budget) or from the DLQ (fresh budget)
    state.due_at = data.get("due_at")
    if before == JobStatus.DEAD.value:
        state.round_attempts = 0
    elif before == JobStatus.COMPLETED.value:  # a new payment round of a reversed amount
        state.round_attempts = 0
        state.round = int(data.get("round", state.round + 1))
        state.round_amount = data.get("amount")
        state.completed_at = None
        state.reference = state.fee = state.provider_status = None
    state.dead_lettered_at = None
    state.worker = None


def _begins(state: Progress, _: str, __: Moment, ___: str, ____: Mapping[str, Any]) -> None:
    """``enqueued`` starts a stream (``apply`` builds the job); the table allows it only first."""


def step_of(event_type: EventType) -> Step:
    """What ``event_type`` changes in a job's progress (every member has its step)."""
    step: Step
    match event_type:
        case EventType.ENQUEUED:
            step = _begins
        case EventType.ATTEMPTED:
            step = _attempted
        case EventType.COMPLETED:
            step = _completed
        case EventType.FAILED:
            step = _failed
        case EventType.DEAD_LETTERED:
            step = _dead_lettered
        case EventType.REQUEUED:
            step = _requeued
        case EventType.SUBMITTED | EventType.CANCELLED | EventType.REVERSED | EventType.REFUNDED:
            step = _after_queue_step(event_type)
        case EventType.PAUSED | EventType.RESUMED | EventType.BULK_REQUESTED | EventType.LIMITS_SET:
            step = _no_job
        case _:
            assert_never(event_type)
    return step


def _no_job(state: Progress, before: str, _: Moment, __: str, ___: Mapping[str, Any]) -> None:
    """An operator event (``ledger.control``) moves no job: the table has no row for it, so
    ``advance`` refuses it before a step runs; this step is never reached."""
    raise IllegalTransition(state.job_id, JobStatus(before), EventType.PAUSED)


def _after_queue_step(
    event_type: Literal[
        EventType.SUBMITTED, EventType.CANCELLED, EventType.REVERSED, EventType.REFUNDED
    ],
) -> Step:
    """``step_of`` for the settlement's events beyond the queue."""
    match event_type:
        case EventType.SUBMITTED:
            return _submitted
        case EventType.CANCELLED:
            return _cancelled
        case EventType.REVERSED:
            return _reversed
        case EventType.REFUNDED:
            return _refunded
        case _:
            assert_never(event_type)


#: ``STATUS_AFTER`` with each event's step: one look-up per event folded
_MOVES: Mapping[tuple[str | None, str], tuple[str, Step]] = {
    (before, event): (after, step_of(EventType(event)))
    for (before, event), after in STATUS_AFTER.items()
}


def apply(job: Job | None, event: StoredEvent) -> Job:
    """Fold one event into the job; ``IllegalTransition`` if the lifecycle forbids it."""
    if job is None or event.type is EventType.ENQUEUED:
        status = next_status(event.job_id, job.status if job else None, event.type)
        return _enqueued(event, status)
    state = Progress(
        job.job_id,
        job.status.value,
        job.version,
        job.updated_at,
        job.due_at,
        job.attempts,
        job.round_attempts,
        job.worker,
        job.lease_until,
        job.last_error,
        job.dead_lettered_at,
        job.completed_at,
        job.amount,
        job.round,
        job.round_amount,
        job.paid,
        job.reversed,
        job.refunded,
        job.reference,
        job.fee,
        job.provider_status,
    )
    advance(state, event.type.value, event.version, event.occurred_at, event.actor, event.data)
    return state.job_with(
        request=job.request, max_attempts=job.max_attempts, created_at=job.created_at
    )


def _enqueued(event: StoredEvent, status: JobStatus) -> Job:
    data = event.data
    return Job(
        job_id=event.job_id,
        status=status,
        version=event.version,
        request=data["request"],
        max_attempts=int(data["max_attempts"]),
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        due_at=as_time(data.get("due_at")),
    )


def fold(events: Iterable[StoredEvent]) -> Job | None:
    """The job after all its events (``None`` for an empty stream, and for the operator
    stream, which is no job's: ``ledger.control``)."""
    job: Job | None = None
    for event in events:
        if job is None and is_operator_event(event.type):
            return None
        job = apply(job, event)
    return job
