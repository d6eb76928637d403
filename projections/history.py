"""A job's history, read from the log itself (the truth, never behind): what
``GET /api/jobs/{id}/history`` and ``ledger history`` answer. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.errors import JobNotFound
from ledger.events import StoredEvent, format_time
from ledger.lifecycle import fold
from ledger.log_reader import LogReader


@dataclass(frozen=True, slots=True)
class JobHistory:
    """Every event of one job, read from the log (the truth), and the state they fold to."""

    job_id: str
    state: str
    events: list[StoredEvent]

    def as_api(self) -> dict[str, Any]:
        """The object ``GET /api/jobs/{id}/history`` returns (``ledger history --json``)."""
        return {
            "jobId": self.job_id,
            "state": self.state,
            "events": [
                {
                    "position": event.position,
                    "version": event.version,
                    "type": event.type.value,
                    "data": event.data,
                    "occurredAt": format_time(event.occurred_at),
                    "actor": event.actor,
                }
                for event in self.events
            ],
        }


def history(store: LogReader, job_id: str, now: datetime | None = None) -> JobHistory:
    """A job's full history; ``JobNotFound`` if the log has no such job.

    ``state`` is the job's status, or ``delayed`` for a waiting job due after ``now``.
    """
    events = store.read_stream(job_id)
    folded = fold(events)
    if folded is None:
        raise JobNotFound(job_id)
    moment = now if now is not None else datetime.now(UTC)
    state = "delayed" if folded.is_delayed(moment) else folded.status.value
    return JobHistory(job_id, state, events)
