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
from projections.fold import ENQUEUED, Totals

#: the bucket of waiting jobs due after the time asked about (counted at query time)
DELAYED = "delayed"


def bucket_of(status: JobStatus) -> str:
    """The stats bucket of a job in ``status`` (waiting jobs due later are ``DELAYED``)."""
    match status:
        case JobStatus.DEAD:
            return "dlq"  # the name the API has always used
        case JobStatus.WAITING | JobStatus.PROCESSING | JobStatus.FAILED | JobStatus.COMPLETED:
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
        counts["amounts"] = {
            currency: {name: totals.amount for name, totals in buckets.items()}
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
    return {name: Totals() for name in (*BUCKETS, ENQUEUED)}


def stats_from_rows(
    rows: Iterable[tuple[str, str, int, int]],
    delayed: Iterable[tuple[str, int, int]],
    now: datetime,
    position: int,
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
    return QueueStats(now, position, by_currency)


def stats_from_jobs(jobs: Iterable[Job], now: datetime, position: int) -> QueueStats:
    """The same numbers folded straight from jobs (the independent check)."""
    by_currency: dict[str, dict[str, Totals]] = {}
    for job in jobs:
        buckets = by_currency.setdefault(job.currency, empty_buckets())
        bucket = DELAYED if job.is_delayed(now) else STATUS_BUCKET[job.status.value]
        buckets[bucket].add(1, job.amount)
        buckets[ENQUEUED].add(1, job.amount)
    return QueueStats(now, position, by_currency)


@dataclass(frozen=True, slots=True)
class CurrencyBalance:
    """Money conservation for one currency: enqueued = the sum over the buckets."""

    currency: str
    enqueued: Totals
    buckets: dict[str, Totals]

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
    def balanced(self) -> bool:
        return self.difference.is_zero

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "enqueued": self.enqueued.amount,
            **{name: totals.amount for name, totals in self.buckets.items()},
            "difference": self.difference.amount,
            "jobsDifference": self.difference.jobs,
            "balanced": self.balanced,
        }


def balances(stats: QueueStats) -> list[CurrencyBalance]:
    """Per currency: enqueued = completed + waiting + delayed + processing + failed + dlq.

    "failed" is the short step between a failed attempt and its retry or
    dead-lettering; money there is still owed and still counted.
    """
    return [
        CurrencyBalance(
            currency=currency,
            enqueued=buckets[ENQUEUED],
            buckets={name: buckets[name] for name in BUCKETS},
        )
        for currency, buckets in sorted(stats.by_currency.items())
    ]
