"""The two ports the service stands on: the log and the hot queue.

``Ledger``, ``Worker``, ``QueueRepair`` and ``Relay`` hold an ``EventLog`` and a
``WorkQueue``, never a database or a Redis client. The adapters are
``ledger.store.EventStore`` (SQLite, PostgreSQL) and ``ledger.queue.HotQueue``
(fakeredis, Redis); ``tests/memory`` holds an in-memory twin of each for fast
unit tests of the service and the worker. One contract suite per port
(``tests/contracts``) runs against every implementation: a new adapter passes
it, or it is not one.

The protocols list what the service, the worker and the repair path use, with
the semantics the contract suites pin down; anything else an adapter offers
(the SQL reads of ``LogReader``, the queue's inspection helpers) is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from ledger.errors import IdempotencyConflict
from ledger.events import EventType, NewEvent, StoredEvent
from ledger.lifecycle import Job
from ledger.log_reader import LogHead
from ledger.queue import Claim, Depths
from ledger.request import SettlementRequest
from ledger.store import (
    AppendResult,
    EnqueueResult,
    LiveCheckpoint,
    PreparedEnqueue,
    StreamAppend,
)


class EventLog(Protocol):
    """The append-only log: version-checked appends, idempotent enqueues, stream reads."""

    #: the id given to each new job
    new_job_id: Callable[[], str]

    def append(
        self, job_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append to one stream at ``expected_version``, or raise ``ConcurrencyError``."""
        ...

    def append_many(
        self, appends: Sequence[StreamAppend], *, skip_stale: bool = False
    ) -> AppendResult:
        """Append to many streams at once; all or nothing unless ``skip_stale``."""
        ...

    def enqueue_many(
        self,
        requests: Sequence[SettlementRequest],
        *,
        max_attempts: int,
        delay: timedelta | None = None,
        actor: str = "service",
    ) -> list[EnqueueResult]:
        """New jobs, idempotently per key; one conflicting key refuses the whole batch."""
        ...

    def enqueue_each(
        self, prepared: Sequence[PreparedEnqueue]
    ) -> list[EnqueueResult | IdempotencyConflict]:
        """New jobs, each with its own outcome (a conflicting key fails only itself)."""
        ...

    def head(self) -> LogHead:
        """The last event's position, hash and time."""
        ...

    def read_stream(self, job_id: str) -> list[StoredEvent]:
        """One job's events in version order (empty for an unknown job)."""
        ...

    def read_streams(self, job_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        """Several jobs' events (unknown jobs left out)."""
        ...

    def latest_events(self, job_ids: Sequence[str]) -> dict[str, StoredEvent]:
        """Each job's last event (unknown jobs left out)."""
        ...

    def unfinished(
        self, after: int = 0, limit: int = 5000, *, until: int | None = None
    ) -> list[StoredEvent]:
        """The last event of each job not finished, among the events after ``after``."""
        ...

    def changes_after(self, after: int, limit: int = 5000) -> list[tuple[int, str, EventType]]:
        """``(position, job_id, type)`` of the events after ``after``, in order."""
        ...

    def submitted_due(self, now: datetime, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        """``submitted`` events still their job's last, due for confirmation by ``now``."""
        ...

    def live_checkpoint(self) -> LiveCheckpoint | None:
        """The last recovery's live jobs and log position (None before the first)."""
        ...

    def save_live_checkpoint(self, position: int, job_ids: Sequence[str]) -> bool:
        """Replace the checkpoint unless a later one stands (then False)."""
        ...


class WorkQueue(Protocol):
    """The hot queue: ready, delayed and in-flight jobs, leases, wake-ups, a payload cache.

    Scores are milliseconds of the queue's own clock (Redis ``TIME``); every
    change is atomic; pushes are idempotent (a held job stays where it is).
    """

    def close(self) -> None: ...

    def ping(self) -> None: ...

    def check_safe(self) -> None:
        """Refuse a queue that may drop jobs on its own (``UnsafeRedis``)."""
        ...

    def mark_recovered(self) -> None: ...

    def looks_flushed(self) -> bool:
        """True when the queue lost its keys since ``mark_recovered``."""
        ...

    def push(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        """Push ``(job id, due ms or 0)`` unless held anywhere; the number pushed."""
        ...

    def move(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        """Put jobs in ready or delayed wherever they were; the number made claimable now."""
        ...

    def restore(self, items: Sequence[tuple[str, int]]) -> int:
        """Put ``(job id, lease deadline ms)`` in flight unless held anywhere."""
        ...

    def finish(self, job_ids: Sequence[str]) -> int:
        """Drop jobs from every set and the cache; the number that were held."""
        ...

    def claim(self, limit: int, lease_ms: int, promote: int = 1000) -> Claim:
        """Promote due delayed jobs, then lease up to ``limit`` ready ones, oldest first;
        nothing while the stored controls say paused (``Claim.paused``)."""
        ...

    def set_controls(self, version: int, *, paused: bool, rate: int = 0) -> bool:
        """Store the queue's controls at the operator stream's ``version`` unless a later
        version is stored; True if stored. ``rate``: most claims per second (0: no limit)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until a push wakes the caller or ``timeout`` seconds pass."""
        ...

    def renew(self, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend leases; the ids whose lease was lost."""
        ...

    def reap(self, limit: int, grace_ms: int) -> list[str]:
        """Ids whose lease expired, held ``grace_ms`` longer while the caller decides."""
        ...

    def cache(self, jobs: Sequence[Job], *, only_missing: bool = False) -> None: ...

    def cached(self, job_ids: Sequence[str]) -> dict[str, Job]: ...

    def clean_payloads(self, batch: int = 500) -> int:
        """Drop cache entries of jobs no set holds; the number dropped."""
        ...

    def depths(self) -> Depths: ...

    def delayed_due_by(self, deadline_ms: int) -> int: ...
