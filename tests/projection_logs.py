"""Random valid event logs for projection tests (hypothesis), as plans of transactions.

A plan is a list of transactions; each transaction advances a few jobs (in any
order, so jobs interleave) by one or two legal events, walking the lifecycle's
transition table: retries with backoff, dead-lettering, requeues from the DLQ,
delayed enqueues. ``append_plan`` writes it through the real store;
``stored_plan`` turns it into ``StoredEvent``s without a database, the way the
store would.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import strategies as st

from ledger.events import GENESIS_HASH, EventType, NewEvent, StoredEvent, format_time
from ledger.lifecycle import JobStatus, next_status
from ledger.request import SettlementRequest
from ledger.store import EventStore, StreamAppend
from tests.factories import T0

CURRENCIES = ("KRW", "USD", "JPY")

T = TypeVar("T")


class Chooser:
    """Choices from hypothesis (``draw``) or from a seeded ``random.Random``."""

    def __init__(self, draw: st.DrawFn | None = None, rng: random.Random | None = None) -> None:
        self._draw = draw
        self._rng = rng or random.Random(0)

    def integer(self, low: int, high: int) -> int:
        if self._draw is not None:
            return self._draw(st.integers(low, high))
        return self._rng.randint(low, high)

    def boolean(self) -> bool:
        return self.integer(0, 1) == 1

    def pick(self, items: Sequence[T]) -> T:
        return items[self.integer(0, len(items) - 1)]


@dataclass(frozen=True)
class Op:
    """One event for job number ``job`` of the plan."""

    job: int
    type: EventType
    params: dict[str, Any] = field(default_factory=dict)


Transaction = list[list[Op]]  # per job: its events in this transaction
Plan = list[Transaction]


def _next_ops(choose: Chooser, job: int, status: JobStatus, attempt: int) -> list[Op]:
    if status is JobStatus.WAITING:
        return [Op(job, EventType.ATTEMPTED, {"attempt": attempt + 1})]
    if status is JobStatus.PROCESSING:
        if choose.boolean():
            return [Op(job, EventType.COMPLETED, {"attempt": attempt})]
        failed = Op(job, EventType.FAILED, {"attempt": attempt, "reason": f"boom {attempt}"})
        # a worker usually appends the failure and its consequence together
        if choose.boolean():
            return [failed]
        return [failed, _after_failure(choose, job, attempt)]
    if status is JobStatus.FAILED:
        return [_after_failure(choose, job, attempt)]
    # dead: an operator requeues it
    return [Op(job, EventType.REQUEUED, {"source": "dlq", "delay": 0})]


def _after_failure(choose: Chooser, job: int, attempt: int) -> Op:
    if choose.boolean():
        delay = choose.pick([0, 0, 3600])
        return Op(job, EventType.REQUEUED, {"source": "retry", "delay": delay})
    return Op(job, EventType.DEAD_LETTERED, {"attempt": attempt})


@st.composite
def plans(draw: st.DrawFn, max_transactions: int = 30) -> Plan:
    """A random valid log: many jobs, interleaved, with retries, DLQ and requeues."""
    return make_plan(Chooser(draw=draw), max_transactions)


def seeded_plan(seed: int, transactions: int = 30) -> Plan:
    """A reproducible random plan of exactly ``transactions`` transactions."""
    return make_plan(Chooser(rng=random.Random(seed)), transactions, exact=True)


def make_plan(choose: Chooser, max_transactions: int, *, exact: bool = False) -> Plan:
    status: dict[int, JobStatus] = {}
    attempts: dict[int, int] = {}
    plan: Plan = []
    count = max_transactions if exact else choose.integer(1, max_transactions)
    for _ in range(count):
        transaction: Transaction = []
        touched: set[int] = set()
        for _ in range(choose.integer(1, 3)):
            open_jobs = [
                job
                for job, state in status.items()
                if state is not JobStatus.COMPLETED and job not in touched
            ]
            if not open_jobs or choose.integer(0, 3) == 0:
                job = len(status)
                ops = [_enqueue(choose, job)]
            else:
                job = choose.pick(open_jobs)
                ops = _next_ops(choose, job, status[job], attempts.get(job, 0))
            for op in ops:
                status[job] = next_status(str(job), status.get(job), op.type)
                if op.type is EventType.ATTEMPTED:
                    attempts[job] = attempts.get(job, 0) + 1
            touched.add(job)
            transaction.append(ops)
        plan.append(transaction)
    return plan


def _enqueue(choose: Chooser, job: int) -> Op:
    return Op(
        job,
        EventType.ENQUEUED,
        {
            "user_id": f"user-{choose.integer(0, 3)}",
            "place_id": f"place-{choose.integer(0, 2)}",
            "mission_id": f"mission-{choose.integer(0, 2)}",
            "amount": choose.integer(1, 10**9),
            "currency": choose.pick(CURRENCIES),
            "max_attempts": choose.integer(1, 3),
            "delay": choose.pick([0, 0, 0, 7200]),
        },
    )


def new_event(op: Op, job_id: str) -> NewEvent:
    """The event ``op`` stands for, for job ``job_id`` (its id doubles as idempotency key)."""
    params = op.params
    delay = timedelta(seconds=params.get("delay", 0)) or None
    if op.type is EventType.ENQUEUED:
        request = SettlementRequest(
            user_id=params["user_id"],
            place_id=params["place_id"],
            mission_id=params["mission_id"],
            amount=params["amount"],
            currency=params["currency"],
            idempotency_key=f"key-{job_id}",
            metadata={"qr_token": "qr", "receipt_id": job_id},
        )
        data = {
            "request": request.as_record(),
            "fingerprint": request.fingerprint(),
            "max_attempts": params["max_attempts"],
            "due_at": None,
        }
        return NewEvent(EventType.ENQUEUED, data, "service", due_in=delay)
    if op.type is EventType.ATTEMPTED:
        return NewEvent(op.type, {"attempt": params["attempt"], "lease_until": None}, "worker-1")
    if op.type is EventType.COMPLETED:
        return NewEvent(op.type, {"attempt": params["attempt"]}, "worker-1")
    if op.type is EventType.FAILED:
        data = {"attempt": params["attempt"], "reason": params["reason"], "retryable": True}
        return NewEvent(op.type, data, "worker-1")
    if op.type is EventType.DEAD_LETTERED:
        data = {"attempt": params["attempt"], "reason": "attempts exhausted"}
        return NewEvent(op.type, data, "worker-1")
    source = params["source"]
    data = {"due_at": None, "reason": source, "source": source}
    return NewEvent(op.type, data, "operator" if source == "dlq" else "worker-1", due_in=delay)


def append_plan(store: EventStore, plan: Plan) -> list[str]:
    """Append the plan through the store (fresh job ids every call); returns the job ids."""
    job_ids: dict[int, str] = {}
    versions: dict[str, int] = {}
    for transaction in plan:
        appends = []
        for ops in transaction:
            job_id = job_ids.setdefault(ops[0].job, str(uuid.uuid4()))
            appends.append(
                StreamAppend(job_id, versions.get(job_id, 0), [new_event(op, job_id) for op in ops])
            )
            versions[job_id] = versions.get(job_id, 0) + len(ops)
        store.append_many(appends)
    return list(job_ids.values())


def stored_plan(plan: Plan, *, step: timedelta = timedelta(minutes=7)) -> list[StoredEvent]:
    """The events the store would hold after ``append_plan`` (no database, no hashes)."""
    events: list[StoredEvent] = []
    versions: dict[str, int] = {}
    for number, transaction in enumerate(plan):
        now = T0 + step * number
        for ops in transaction:
            job_id = f"job-{ops[0].job}"
            for op in ops:
                new = new_event(op, job_id)
                data = dict(new.data)
                if new.due_in is not None:
                    data["due_at"] = format_time(now + new.due_in)
                versions[job_id] = versions.get(job_id, 0) + 1
                key = data["request"]["idempotency_key"] if "request" in data else None
                events.append(
                    StoredEvent(
                        position=len(events) + 1,
                        job_id=job_id,
                        version=versions[job_id],
                        type=new.type,
                        data=data,
                        occurred_at=now,
                        actor=new.actor,
                        idempotency_key=key,
                        prev_hash=GENESIS_HASH,
                        hash=GENESIS_HASH,
                    )
                )
    return events
