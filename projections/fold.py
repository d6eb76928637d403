"""The pure fold of events into read-model changes.

No IO. ``Fold`` holds the state of the jobs it has seen as plain mutable records
(``JobState``), folds raw log rows into them through ``ledger.lifecycle.advance``
(the one transition table), and hands out what changed since the last
``drain``: the jobs to write, the DLQ rows to drop, and the deltas of the
summed tables (``projections.rows`` turns them into each table's rows). The SQL
runner writes a drain per transaction; the in-memory projection keeps it in
dicts. A completed job is terminal: once drained it is forgotten, so a fold over
the whole log holds only the jobs still open.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from itertools import islice
from typing import Any, assert_never

import orjson

from ledger.errors import IllegalTransition
from ledger.events import EventType, Moment, StoredEvent, to_utc
from ledger.lifecycle import (
    STATUS_AFTER,
    TERMINAL,
    Job,
    JobStatus,
    Progress,
    advance,
)

#: bucket of ``queue_stats`` that counts every job ever enqueued (it only grows)
ENQUEUED = "enqueued"

#: (currency, bucket) where bucket is a job status or ``ENQUEUED``
StatsKey = tuple[str, str]
#: (day, currency): the grain of ``daily_totals``
DailyKey = tuple[date, str]

#: one event as the log stores it: (position, job_id, version, type, data, occurred_at,
#: actor); ``data`` is the stored JSON text or already decoded, ``occurred_at`` a ``Moment``
RawEvent = tuple[int, str, int, str, "str | Mapping[str, Any]", Moment, str]

_NO_DATA: Mapping[str, Any] = {}


class Effect(Enum):
    """What an event does to the read models besides moving its job along the lifecycle."""

    #: a new job: a row, and ``enqueued`` in the stats
    STARTS = "starts"
    #: money settled: the day's ``daily_totals`` and the ``paid`` sums
    SETTLES = "settles"
    #: the job enters the dead-letter view, with the event's reason
    DEAD_LETTERS = "dead_letters"
    #: money came back after the payout: the ``reversed``/``refunded`` sums (by the day
    #: the payout settled) and the job's money columns
    GIVES_BACK = "gives_back"
    #: the job's row and stats bucket change, nothing else
    MOVES = "moves"
    #: an operator event of the queue (``ledger.control``): no job, no read model of jobs
    NONE = "none"


def effect_of(event_type: EventType) -> Effect:
    """The read-model effect of ``event_type`` (every member has one)."""
    match event_type:
        case EventType.ENQUEUED:
            return Effect.STARTS
        case EventType.COMPLETED:
            return Effect.SETTLES
        case EventType.DEAD_LETTERED:
            return Effect.DEAD_LETTERS
        case EventType.REVERSED | EventType.REFUNDED:
            return Effect.GIVES_BACK
        case (
            EventType.ATTEMPTED
            | EventType.FAILED
            | EventType.REQUEUED
            | EventType.SUBMITTED
            | EventType.CANCELLED
        ):
            return Effect.MOVES
        case EventType.PAUSED | EventType.RESUMED | EventType.BULK_REQUESTED | EventType.LIMITS_SET:
            return Effect.NONE
        case _:
            assert_never(event_type)


#: ``effect_of`` by the type's text, as the log's rows carry it: one look-up per event
EFFECTS: Mapping[str, Effect] = {event.value: effect_of(event) for event in EventType}
#: the types that start a job's stream
_STARTS = frozenset(kind for kind, effect in EFFECTS.items() if effect is Effect.STARTS)
#: the types the job folds leave out (the operator stream's)
_SKIPPED = frozenset(kind for kind, effect in EFFECTS.items() if effect is Effect.NONE)
#: the status of dead-lettered jobs, and the statuses a job is finished in (as text)
_DEAD = JobStatus.DEAD.value
_TERMINAL = frozenset(status.value for status in TERMINAL)


#: the money buckets of ``queue_stats`` beside the statuses: minor units paid (every
#: payment round's ``completed``), returned by the provider, and refunded by payees;
#: ``jobs`` counts the records
PAID = "paid"
REVERSED = EventType.REVERSED.value
REFUNDED = EventType.REFUNDED.value
MONEY_BUCKETS = (PAID, REVERSED, REFUNDED)


@dataclass(slots=True)
class Totals:
    """A count of jobs and a sum of minor units (a mutable accumulator)."""

    jobs: int = 0
    amount: int = 0

    def add(self, jobs: int, amount: int) -> None:
        self.jobs += jobs
        self.amount += amount

    @property
    def is_zero(self) -> bool:
        return self.jobs == 0 and self.amount == 0


@dataclass(slots=True)
class DayTotals(Totals):
    """A day's payouts: ``jobs`` payments of ``amount`` in all, and what came back of the
    payouts settled that day (``reversed``, ``refunded``)."""

    reversed: int = 0
    refunded: int = 0

    def merge(self, other: DayTotals) -> None:
        self.add(other.jobs, other.amount)
        self.reversed += other.reversed
        self.refunded += other.refunded

    @property
    def is_zero(self) -> bool:
        return self.jobs == 0 and self.amount == 0 and self.reversed == 0 and self.refunded == 0


@dataclass(slots=True, kw_only=True)
class JobState(Progress):
    """A job as the projections hold it: the lifecycle's progress plus its row's fixed columns."""

    #: position of the job's last event
    position: int
    created_at: Moment
    max_attempts: int
    user_id: str
    place_id: str
    mission_id: str
    currency: str
    idempotency_key: str
    #: the request as the ``enqueued`` event holds it, if this fold saw that event (rows
    #: do not store it: the log has it, and only the DLQ view shows it)
    request: Mapping[str, Any] | None = None
    #: reason on the ``dead_lettered`` event, while the job is dead-lettered
    dead_letter_reason: str | None = None
    #: the status its stored row has (``None``: no row yet); stats and DLQ deltas
    stored_status: str | None = None

    def to_job(self, request: Mapping[str, Any] | None = None) -> Job:
        """The frozen ``lifecycle.Job`` of this state, with ``request`` if it holds none."""
        request = self.request if request is None else request
        if request is None:
            raise ValueError(f"job {self.job_id}: no request to build its Job with")
        return self.job_with(
            request=request, max_attempts=self.max_attempts, created_at=self.created_at
        )


@dataclass(slots=True)
class Changes:
    """What the events folded since the last ``drain`` change in every projection."""

    #: jobs with no stored row yet (plain inserts), and jobs whose row must be overwritten
    new_jobs: list[JobState] = field(default_factory=list)
    changed_jobs: list[JobState] = field(default_factory=list)
    #: jobs dead-lettered now whose DLQ row must be (re)written
    dlq: list[JobState] = field(default_factory=list)
    #: jobs that were dead-lettered in their stored row and are not any more
    dlq_removed: list[str] = field(default_factory=list)
    #: ``queue_stats`` deltas; zero deltas are left out
    stats: dict[StatsKey, Totals] = field(default_factory=dict)
    #: ``daily_totals`` increments
    daily: dict[DailyKey, DayTotals] = field(default_factory=dict)
    #: position of the last event folded
    position: int = 0

    @property
    def jobs(self) -> list[JobState]:
        return [*self.new_jobs, *self.changed_jobs]


class Fold:
    """Folds log rows into job states and read-model deltas (see the module docstring).

    Feed it events in position order. A job it does not hold must be given to
    ``hold`` first (``missing`` names them): an event for an unknown job is
    an ``IllegalTransition``, as is any event the lifecycle forbids.
    """

    def __init__(self) -> None:
        #: the jobs held, oldest first (completed ones only until the next drain)
        self.jobs: dict[str, JobState] = {}
        self.position = 0
        self._touched: dict[str, JobState] = {}
        self._changes = Changes()

    def missing(self, rows: Sequence[RawEvent]) -> list[str]:
        """Jobs that ``rows`` need and this fold does not hold (touched, not enqueued in them)."""
        held = self.jobs
        # comprehensions and set algebra: this runs over every page of a replay
        needed = {row[1] for row in rows if row[1] not in held and row[3] not in _SKIPPED}
        needed.difference_update([row[1] for row in rows if row[3] in _STARTS])
        return sorted(needed)

    def hold(self, states: Iterable[JobState]) -> None:
        """Take jobs as stored (``stored_status`` set) before folding their next events."""
        for state in states:
            self.jobs[state.job_id] = state

    def fold(self, rows: Iterable[RawEvent]) -> None:
        """Fold ``rows`` (in position order, after everything folded so far)."""
        jobs, touched, changes = self.jobs, self._touched, self._changes
        daily = changes.daily
        position = self.position
        effects, starts, settles, dead_letters, gives_back, skipped = (
            EFFECTS,
            Effect.STARTS,
            Effect.SETTLES,
            Effect.DEAD_LETTERS,
            Effect.GIVES_BACK,
            Effect.NONE,
        )
        stats = changes.stats
        for position, job_id, version, kind, data, occurred_at, actor in rows:
            effect = effects.get(kind)
            if effect is skipped:
                continue
            if effect is starts:
                if job_id in jobs:
                    raise IllegalTransition(job_id, jobs[job_id].status, kind)
                state = self._enqueued(job_id, version, position, _decode(data), occurred_at)
                jobs[job_id] = state
                touched[job_id] = state
                continue
            held = jobs.get(job_id)
            if held is None:
                raise IllegalTransition(job_id, None, kind)
            state = held
            if effect is settles:
                paid_before = state.paid
                advance(state, kind, version, occurred_at, actor, _decode(data))
                day = _day(occurred_at)
                currency, amount = state.currency, state.paid - paid_before
                # _add, inlined: once per settled job on a replay of the whole log
                entry = daily.get((day, currency))
                if entry is None:
                    daily[(day, currency)] = entry = DayTotals()
                entry.jobs += 0 if paid_before else 1
                entry.amount += amount
                # ``jobs`` of a money bucket counts the jobs with any such money
                _add(stats, (currency, PAID), 0 if paid_before else 1, amount)
                state.dead_letter_reason = None
            elif effect is gives_back:
                payload = _decode(data)
                first = not (state.reversed if kind == REVERSED else state.refunded)
                advance(state, kind, version, occurred_at, actor, payload)
                self._gives_back(state, kind, int(payload.get("amount", 0)), first=first)
            else:
                payload = _decode(data)
                advance(state, kind, version, occurred_at, actor, payload)
                if effect is dead_letters:
                    reason = payload.get("reason")
                    state.dead_letter_reason = None if reason is None else str(reason)
                else:
                    state.dead_letter_reason = None
            state.position = position
            touched[job_id] = state
        self.position = position

    def _gives_back(self, state: JobState, kind: str, amount: int, *, first: bool) -> None:
        """Count money that came back, on the day its payout settled."""
        _add(self._changes.stats, (state.currency, kind), 1 if first else 0, amount)
        settled = state.completed_at if state.completed_at is not None else state.updated_at
        entry = self._changes.daily.get((_day(settled), state.currency))
        if entry is None:
            self._changes.daily[(_day(settled), state.currency)] = entry = DayTotals()
        if kind == REVERSED:
            entry.reversed += amount
        else:
            entry.refunded += amount

    def fold_events(self, events: Iterable[StoredEvent]) -> None:
        """``fold`` for ``StoredEvent``s (data already decoded)."""
        self.fold(
            (e.position, e.job_id, e.version, e.type.value, e.data, e.occurred_at, e.actor)
            for e in events
        )

    def drain(self) -> Changes:
        """What changed since the last drain; completed jobs are forgotten after it."""
        changes, self._changes = self._changes, Changes()
        stats = changes.stats
        jobs = self.jobs
        for job_id, state in self._touched.items():
            before, after = state.stored_status, state.status
            currency, amount = state.currency, state.amount
            if before is None:
                changes.new_jobs.append(state)
            else:
                changes.changed_jobs.append(state)
                if before != after:
                    _add(stats, (currency, before), -1, -amount)
                if before == _DEAD and after != _DEAD:
                    changes.dlq_removed.append(job_id)
            if before != after:
                _add(stats, (currency, after), 1, amount)
            if after == _DEAD:
                changes.dlq.append(state)
            state.stored_status = after
            if after in _TERMINAL:
                del jobs[job_id]
        self._touched = {}
        changes.stats = {key: value for key, value in stats.items() if not value.is_zero}
        changes.position = self.position
        return changes

    def forget(self, keep: int) -> None:
        """Drop the oldest held jobs down to ``keep`` (call right after a drain).

        Their rows are stored, so a later event for one of them is ``missing``
        and loaded again: memory stays bounded whatever the log holds.
        """
        excess = len(self.jobs) - keep
        if excess > 0 and not self._touched:
            for job_id in list(islice(self.jobs, excess)):
                del self.jobs[job_id]

    def _enqueued(
        self, job_id: str, version: int, position: int, data: Mapping[str, Any], at: Moment
    ) -> JobState:
        status = STATUS_AFTER[(None, EventType.ENQUEUED.value)]
        request = data["request"]
        state = JobState(
            job_id,
            status,
            version,
            at,
            data.get("due_at"),
            position=position,
            created_at=at,
            max_attempts=int(data["max_attempts"]),
            user_id=str(request["user_id"]),
            place_id=str(request["place_id"]),
            mission_id=str(request["mission_id"]),
            amount=int(request["amount"]),
            currency=str(request["currency"]),
            idempotency_key=str(request["idempotency_key"]),
            request=request,
        )
        changes = self._changes
        _add(changes.stats, (state.currency, ENQUEUED), 1, state.amount)
        return state


def _decode(data: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, str):
        decoded: Mapping[str, Any] = orjson.loads(data)
        return decoded
    return data


def _day(moment: Moment) -> date:
    """The UTC day of an event time (the log's time text is UTC already)."""
    if isinstance(moment, str):
        return _day_of(moment[:10])
    return to_utc(moment).date()


@functools.lru_cache(maxsize=1024)
def _day_of(text: str) -> date:
    return date.fromisoformat(text)


def _add(totals: dict[Any, Totals], key: Any, jobs: int, amount: int) -> None:
    entry = totals.get(key)
    if entry is None:
        totals[key] = entry = Totals()
    entry.jobs += jobs
    entry.amount += amount
