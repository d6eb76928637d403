"""The log folded to a state as of a position: stats, the DLQ, totals, one job.

The fold is the projections' own (``projections.memory.MemoryProjection``, the
same code the SQL runner and the auditors' as-of reads use), run in memory
over the log's prefix: nothing is written, so a read-only role can ask.
Memory grows with the number of jobs in the prefix (one small record each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ledger.business_time import business_day
from ledger.events import as_time
from ledger.lifecycle import JobStatus
from ledger.log_reader import LogReader
from projections.as_of import dlq_entries, dlq_rows
from projections.fold import Totals
from projections.memory import MemoryProjection
from projections.queries import DlqEntry, TotalRow
from projections.rows import JobRecord
from projections.stats import CurrencyBalance, QueueStats, balances

#: events folded per batch (memory follows the fold's records, not the batch)
FOLD_BATCH = 5000


@dataclass(frozen=True, slots=True)
class LogState:
    """Every read model as the log's first ``position`` events leave it.

    ``moment`` is the instant the state stands at: the time asked for, or the
    time of the event at ``position``; it decides which waiting jobs count as
    delayed.
    """

    position: int
    moment: datetime
    #: the business time zone totals are counted in unless told otherwise
    zone: ZoneInfo
    _projection: MemoryProjection
    _reader: LogReader

    def stats(self) -> QueueStats:
        """Queue stats (jobs and money per bucket and currency), as ``ledger stats`` shows."""
        return self._projection.stored_stats(self.moment)

    def balances(self) -> list[CurrencyBalance]:
        """Money conservation per currency (enqueued against where it all went)."""
        return balances(self.stats())

    def dlq(self) -> list[DlqEntry]:
        """The dead-letter queue, newest first, each entry with its job's request."""
        return dlq_entries(self._reader, dlq_rows(self._projection))

    def totals(self, zone: ZoneInfo | None = None) -> list[TotalRow]:
        """Completed settlements per currency and business day (``group`` is ``{"day": …}``).

        Days in ``zone`` (default: the connection's ``LEDGER_BUSINESS_TIMEZONE``),
        as ``GET /api/totals`` counts them.
        """
        zone = zone if zone is not None else self.zone
        found: dict[tuple[str, date], Totals] = {}
        if zone.key == "UTC":
            for (day, currency), totals in self._projection.daily.items():
                found[currency, day] = totals
        else:
            for state in self._projection.states.values():
                completed = as_time(state.completed_at)
                if state.status == JobStatus.COMPLETED.value and completed is not None:
                    key = (state.currency, business_day(completed, zone))
                    found.setdefault(key, Totals()).add(1, state.amount)
        return [
            TotalRow(currency=currency, group={"day": day}, jobs=totals.jobs, amount=totals.amount)
            for (currency, day), totals in sorted(found.items())
        ]

    def job(self, job_id: str) -> JobRecord | None:
        """One job's folded state (``None`` if the prefix has no such job)."""
        state = self._projection.states.get(job_id)
        if state is None:
            return None
        return JobRecord(state.to_job(), state.position, state.dead_letter_reason)

    @property
    def job_count(self) -> int:
        """Jobs enqueued in the prefix."""
        return len(self._projection.states)


def fold_prefix(reader: LogReader, position: int, moment: datetime, zone: ZoneInfo) -> LogState:
    """The log's first ``position`` events folded in memory."""
    projection = MemoryProjection()
    if position > 0:
        projection.replay(reader.read_all(until_position=position), FOLD_BATCH)
    return LogState(position, moment, zone, projection, reader)
