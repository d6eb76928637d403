"""Queue statistics as the API reports them, and money conservation per currency.

Pure: built from ``queue_stats`` rows plus the delayed jobs (SQL), or from the jobs
themselves (memory). "delayed" depends on the time asked about, so it is
computed at query time, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, assert_never

from ledger.events import format_time
from ledger.lifecycle import Job, JobStatus
from projections.fold import ENQUEUED, MONEY_BUCKETS, PAID, REFUNDED, REVERSED, Totals

#: the bucket of waiting jobs due after the time asked about (counted at query time)
DELAYED = "delayed"
#: submitted payouts past their confirmation deadline (part of "submitted", at query time)
OVERDUE = "overdue"


def bucket_of(status: JobStatus) -> str:
    """The stats bucket of a job in ``status`` (waiting jobs due later are ``DELAYED``)."""
    match status:
        case JobStatus.DEAD:
            return "dlq"  # the name the API has always used
        case (
            JobStatus.WAITING
            | JobStatus.PROCESSING
            | JobStatus.SUBMITTED
            | JobStatus.FAILED
            | JobStatus.COMPLETED
            | JobStatus.CANCELLED
        ):
            return status.value
        case _:
            assert_never(status)


#: job status → bucket, for every status
STATUS_BUCKET: Mapping[str, str] = {status.value: bucket_of(status) for status in JobStatus}

#: the buckets every job is in exactly one of, in display order: the statuses in
#: lifecycle order, with "delayed" after "waiting"
BUCKETS: tuple[str, ...] = tuple(
    name
    for status in JobStatus
    for name in (bucket_of(status), *((DELAYED,) if status is JobStatus.WAITING else ()))
)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Jobs and amounts per bucket and currency, as of ``now`` and log position ``position``.

    ``by_currency[currency]`` maps each of ``BUCKETS`` and ``"enqueued"`` (every
    job ever enqueued) to a count of jobs and a sum of minor units.
    """

    now: datetime
    position: int
    by_currency: dict[str, dict[str, Totals]] = field(default_factory=dict)
    #: per currency, the submitted payouts past their confirmation deadline at ``now``
    overdue: dict[str, Totals] = field(default_factory=dict)

    def count(self, bucket: str) -> int:
        """Jobs in ``bucket`` over all currencies."""
        return sum(buckets[bucket].jobs for buckets in self.by_currency.values())

    @property
    def total(self) -> int:
        """Every job the ledger holds (all ever enqueued)."""
        return self.count(ENQUEUED)

    def as_api(self, status: str = "healthy") -> dict[str, Any]:
        """The object ``GET /api/queue/stats`` returns (and ``ledger stats --json`` prints).

        ``status`` (healthy, degraded, unhealthy) comes from the health check,
        which the caller runs: projections know nothing of Redis.

        ``stats`` has the job counts (``total`` = every job ever enqueued) and
        ``amounts``: per currency, the minor units in each bucket and ``enqueued``.
        """
        counts: dict[str, Any] = {bucket: self.count(bucket) for bucket in BUCKETS}
        counts["total"] = self.total
        counts[OVERDUE] = sum(totals.jobs for totals in self.overdue.values())
        counts["amounts"] = {
            currency: {
                **{name: totals.amount for name, totals in buckets.items()},
                "net": net(buckets),
                OVERDUE: self.overdue.get(currency, Totals()).amount,
            }
            for currency, buckets in sorted(self.by_currency.items())
        }
        return {
            "status": status,
            "stats": counts,
            "timestamp": format_time(self.now),
            "position": self.position,
            "asOfPosition": self.position,
        }


def empty_buckets() -> dict[str, Totals]:
    return {name: Totals() for name in (*BUCKETS, ENQUEUED, *MONEY_BUCKETS)}


def net(buckets: Mapping[str, Totals]) -> int:
    """What payees kept: paid minus reversed minus refunded."""
    return buckets[PAID].amount - buckets[REVERSED].amount - buckets[REFUNDED].amount


def stats_from_rows(
    rows: Iterable[tuple[str, str, int, int]],
    delayed: Iterable[tuple[str, int, int]],
    now: datetime,
    position: int,
    overdue: Iterable[tuple[str, int, int]] = (),
) -> QueueStats:
    """From ``queue_stats`` rows (currency, bucket, jobs, amount) and the delayed jobs.

    ``delayed`` rows (currency, jobs, amount) are waiting jobs due after ``now``;
    they move from "waiting" to "delayed".
    """
    by_currency: dict[str, dict[str, Totals]] = {}
    for currency, bucket, jobs, amount in rows:
        buckets = by_currency.setdefault(currency, empty_buckets())
        buckets[STATUS_BUCKET.get(bucket, bucket)].add(int(jobs), int(amount))
    for currency, jobs, amount in delayed:
        buckets = by_currency.setdefault(currency, empty_buckets())
        buckets[bucket_of(JobStatus.WAITING)].add(-int(jobs), -int(amount))
        buckets[DELAYED].add(int(jobs), int(amount))
    late = {currency: Totals(int(jobs), int(amount)) for currency, jobs, amount in overdue}
    return QueueStats(now, position, by_currency, late)


def stats_from_jobs(jobs: Iterable[Job], now: datetime, position: int) -> QueueStats:
    """The same numbers folded straight from jobs (the independent check)."""
    by_currency: dict[str, dict[str, Totals]] = {}
    overdue: dict[str, Totals] = {}
    for job in jobs:
        buckets = by_currency.setdefault(job.currency, empty_buckets())
        bucket = DELAYED if job.is_delayed(now) else STATUS_BUCKET[job.status.value]
        buckets[bucket].add(1, job.amount)
        buckets[ENQUEUED].add(1, job.amount)
        for name, money in ((PAID, job.paid), (REVERSED, job.reversed), (REFUNDED, job.refunded)):
            if money:
                buckets[name].add(1, money)
        if is_overdue(job, now):
            overdue.setdefault(job.currency, Totals()).add(1, job.amount)
    return QueueStats(now, position, by_currency, overdue)


def is_overdue(job: Job, now: datetime) -> bool:
    """A submitted payout past its confirmation deadline (workers look it up)."""
    return job.status is JobStatus.SUBMITTED and job.due_at is not None and job.due_at <= now


@dataclass(frozen=True, slots=True)
class CurrencyBalance:
    """Money conservation for one currency: enqueued = the sum over the buckets."""

    currency: str
    enqueued: Totals
    buckets: dict[str, Totals]
    #: paid, reversed and refunded (``MONEY_BUCKETS``)
    money: dict[str, Totals] = field(default_factory=dict)
    #: what payees kept summed job by job (``paid - reversed - refunded`` of each job),
    #: when the caller counted it: the independent side of the money identity
    kept_by_jobs: int | None = None

    @property
    def accounted(self) -> Totals:
        """What the buckets hold together."""
        total = Totals()
        for totals in self.buckets.values():
            total.add(totals.jobs, totals.amount)
        return total

    @property
    def difference(self) -> Totals:
        """Enqueued minus accounted; zero when money is conserved."""
        accounted = self.accounted
        return Totals(self.enqueued.jobs - accounted.jobs, self.enqueued.amount - accounted.amount)

    @property
    def money_difference(self) -> int:
        """paid - (net + reversed + refunded), net as summed job by job; zero when conserved."""
        if self.kept_by_jobs is None:
            return 0
        return net(self.money) - self.kept_by_jobs

    @property
    def balanced(self) -> bool:
        return self.difference.is_zero and self.money_difference == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "enqueued": self.enqueued.amount,
            **{name: totals.amount for name, totals in self.buckets.items()},
            "paid": self.money[PAID].amount,
            "reversed": self.money[REVERSED].amount,
            "refunded": self.money[REFUNDED].amount,
            "net": net(self.money),
            "difference": self.difference.amount,
            "moneyDifference": self.money_difference,
            "jobsDifference": self.difference.jobs,
            "balanced": self.balanced,
        }


def balances(stats: QueueStats, kept: Mapping[str, int] | None = None) -> list[CurrencyBalance]:
    """Per currency: enqueued = waiting + delayed + processing + submitted + failed + dlq
    + completed + cancelled (jobs and their amounts).

    "failed" is the short step between a failed attempt and its retry or
    dead-lettering; money there is still owed and still counted. The money that
    moved is the other identity: paid = net + reversed + refunded
    (``CurrencyBalance.as_dict`` reports both).
    """
    return [
        CurrencyBalance(
            currency=currency,
            enqueued=buckets[ENQUEUED],
            buckets={name: buckets[name] for name in BUCKETS},
            money={name: buckets[name] for name in MONEY_BUCKETS},
            kept_by_jobs=None if kept is None else kept.get(currency, 0),
        )
        for currency, buckets in sorted(stats.by_currency.items())
    ]
