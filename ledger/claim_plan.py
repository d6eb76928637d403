"""Planning a claim: what Redis leased, and the ``attempted`` events the log may take.

``Ledger.exchange`` appends a worker's outcomes and its next claim's
``attempted`` events in one transaction; this module prepares the claim half
(and splits outcomes so each job appears once per append).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ledger.claims import Outcome
from ledger.decisions import attempt_event, from_ms, may_attempt
from ledger.errors import QueueUnavailable
from ledger.lifecycle import Job
from ledger.ports import WorkQueue
from ledger.store import StreamAppend

log = logging.getLogger("ledger.service")


@dataclass
class ClaimPlan:
    """What a claim took from Redis and will append: ``attempted`` per job it may start."""

    now: datetime
    next_due: datetime | None = None
    lease_until: datetime = field(default_factory=lambda: datetime.now(UTC))
    states: dict[str, Job] = field(default_factory=dict)
    appends: list[StreamAppend] = field(default_factory=list)
    repair: list[str] = field(default_factory=list)
    #: the queue is paused (``ledger.control``): Redis gave nothing
    paused: bool = False


def outcome_rounds(outcomes: Sequence[Outcome]) -> Iterator[list[tuple[int, Outcome]]]:
    """Split outcomes so each job appears once per append (``append_many``'s rule)."""
    pending = list(enumerate(outcomes))
    while pending:
        seen: set[str] = set()
        batch: list[tuple[int, Outcome]] = []
        rest: list[tuple[int, Outcome]] = []
        for item in pending:
            (rest if item[1].job.id in seen else batch).append(item)
            seen.add(item[1].job.id)
        yield batch
        pending = rest


def plan_claim(
    queue: WorkQueue,
    states: Callable[[list[str]], dict[str, Job]],
    worker_id: str,
    n: int,
    lease: timedelta,
    *,
    busy: Collection[str] = (),
) -> ClaimPlan:
    """Lease up to ``n`` jobs in Redis and prepare their ``attempted`` events.

    Jobs the log does not allow to start (a stale push, a job in ``busy``:
    its outcome is in the same append) are left for ``QueueRepair.repair``.
    """
    lease_ms = max(int(lease.total_seconds() * 1000), 1)
    if n <= 0:
        return ClaimPlan(now=datetime.now(UTC))
    try:
        got = queue.claim(n, lease_ms)
    except QueueUnavailable:
        if not busy:
            raise
        log.warning("Redis cannot be reached: recording outcomes without claiming")
        return ClaimPlan(now=datetime.now(UTC))
    plan = ClaimPlan(
        now=from_ms(got.now_ms),
        next_due=None if got.next_due_ms is None else from_ms(got.next_due_ms),
        lease_until=from_ms(got.now_ms + lease_ms),
        paused=got.paused,
    )
    if not got.job_ids:
        return plan
    plan.states = states([job_id for job_id in got.job_ids if job_id not in busy])
    for job_id in dict.fromkeys(got.job_ids):
        job = plan.states.get(job_id)
        if job is None or job_id in busy or not may_attempt(job, plan.now):
            plan.repair.append(job_id)
            continue
        event = attempt_event(job, worker_id, plan.lease_until)
        plan.appends.append(StreamAppend(job_id, job.version, [event]))
    return plan
