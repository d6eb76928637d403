"""``MemoryLog``: the append-only log as a list, with the store's rules.

Version-checked appends (all or nothing, or ``skip_stale``), idempotent
enqueues per key (same request: the same job; another request: a conflict),
events sealed into the same hash chain as the SQL store's, and time that never
runs backwards along positions. One lock serialises writers, as the append
lock does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ledger.errors import ConcurrencyError, IdempotencyConflict
from ledger.events import (
    EventType,
    NewEvent,
    StoredEvent,
    format_time,
    is_operator_event,
    sealed_hash,
    to_utc,
)
from ledger.job_ids import new_job_id
from ledger.lifecycle import STATUS_AFTER_EVENT, TERMINAL
from ledger.log_reader import LogHead
from ledger.request import SettlementRequest, canonical_json
from ledger.store import (
    AppendResult,
    EnqueueResult,
    LiveCheckpoint,
    PreparedEnqueue,
    StreamAppend,
    prepare_enqueue,
)

#: event types after which a job is finished (what ``unfinished`` leaves out)
FINISHING = frozenset(
    event
    for event in EventType
    if is_operator_event(event)
    or (event in STATUS_AFTER_EVENT and STATUS_AFTER_EVENT[event] in TERMINAL)
)

Outcome = EnqueueResult | IdempotencyConflict


class MemoryLog:
    """An ``EventLog`` (``ledger.ports``) held in memory."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        new_job_id: Callable[[], str] = new_job_id,
    ) -> None:
        self.events: list[StoredEvent] = []
        self.new_job_id = new_job_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self._streams: dict[str, list[StoredEvent]] = {}
        #: idempotency key -> (job id, fingerprint)
        self._keys: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._checkpoint: LiveCheckpoint | None = None

    # -- writing -------------------------------------------------------------------

    def append(
        self, job_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        return self.append_many([StreamAppend(job_id, expected_version, events)]).events

    def append_many(
        self, appends: Sequence[StreamAppend], *, skip_stale: bool = False
    ) -> AppendResult:
        if not appends:
            return AppendResult()
        job_ids = [item.job_id for item in appends]
        if len(set(job_ids)) != len(job_ids):
            raise ValueError("append_many takes each job at most once per call")
        with self._lock:
            accepted: list[StreamAppend] = []
            rejected: list[ConcurrencyError] = []
            for item in appends:
                actual = len(self._streams.get(item.job_id, ()))
                if actual == item.expected_version:
                    accepted.append(item)
                    continue
                error = ConcurrencyError(item.job_id, item.expected_version, actual)
                if not skip_stale:
                    raise error
                rejected.append(error)
            return AppendResult(self._insert(accepted), rejected)

    def enqueue(
        self,
        request: SettlementRequest,
        *,
        max_attempts: int,
        delay: timedelta | None = None,
        actor: str = "service",
    ) -> EnqueueResult:
        (result,) = self.enqueue_many(
            [request], max_attempts=max_attempts, delay=delay, actor=actor
        )
        return result

    def enqueue_many(
        self,
        requests: Sequence[SettlementRequest],
        *,
        max_attempts: int,
        delay: timedelta | None = None,
        actor: str = "service",
    ) -> list[EnqueueResult]:
        prepared = [
            prepare_enqueue(request, max_attempts=max_attempts, delay=delay, actor=actor)
            for request in requests
        ]
        outcomes = self._enqueue(prepared, each=False)
        return [outcome for outcome in outcomes if isinstance(outcome, EnqueueResult)]

    def enqueue_each(self, prepared: Sequence[PreparedEnqueue]) -> list[Outcome]:
        return self._enqueue(prepared, each=True)

    def _enqueue(self, prepared: Sequence[PreparedEnqueue], *, each: bool) -> list[Outcome]:
        with self._lock:
            known = dict(self._keys)
            results: list[Outcome | None] = []
            appends: list[StreamAppend] = []
            for key, fingerprint, new in prepared:
                if key in known:
                    job_id, seen = known[key]
                    if seen == fingerprint:
                        results.append(EnqueueResult(job_id, created=False))
                    elif each:
                        results.append(IdempotencyConflict(key, job_id))
                    else:
                        raise IdempotencyConflict(key, job_id)
                    continue
                job_id = self.new_job_id()
                known[key] = (job_id, fingerprint)
                appends.append(StreamAppend(job_id, 0, [new]))
                results.append(None)
            stored = iter(self._insert(appends))
            self._keys = known
        return [
            result or EnqueueResult((event := next(stored)).job_id, created=True, event=event)
            for result in results
        ]

    def _insert(self, appends: Sequence[StreamAppend]) -> list[StoredEvent]:
        """Seal and keep the events (the caller holds the lock)."""
        head = self._head()
        now = to_utc(self._clock())
        if head.occurred_at is not None and now < head.occurred_at:
            now = head.occurred_at
        position, prev_hash = head.position, head.hash
        stored: list[StoredEvent] = []
        for item in appends:
            version = item.expected_version
            for new in item.events:
                position += 1
                version += 1
                event = _seal(position, item.job_id, version, new, now, prev_hash)
                prev_hash = event.hash
                stored.append(event)
        for event in stored:
            self.events.append(event)
            self._streams.setdefault(event.job_id, []).append(event)
        return stored

    # -- reading -------------------------------------------------------------------

    def head(self) -> LogHead:
        with self._lock:
            return self._head()

    def _head(self) -> LogHead:
        if not self.events:
            return LogHead()
        last = self.events[-1]
        return LogHead(last.position, last.hash, last.occurred_at)

    def read_stream(self, job_id: str) -> list[StoredEvent]:
        return list(self._streams.get(job_id, ()))

    def read_streams(self, job_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        return {
            job_id: list(self._streams[job_id]) for job_id in job_ids if job_id in self._streams
        }

    def latest_events(self, job_ids: Sequence[str]) -> dict[str, StoredEvent]:
        return {job_id: self._streams[job_id][-1] for job_id in job_ids if job_id in self._streams}

    def unfinished(
        self, after: int = 0, limit: int = 5000, *, until: int | None = None
    ) -> list[StoredEvent]:
        found = [
            event
            for event in self.events[after:until]
            if event.type not in FINISHING and event.version == len(self._streams[event.job_id])
        ]
        return found[:limit]

    def changes_after(self, after: int, limit: int = 5000) -> list[tuple[int, str, EventType]]:
        return [(e.position, e.job_id, e.type) for e in self.events[after : after + limit]]

    def submitted_due(self, now: datetime, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        found = [
            event
            for event in self.events[after:]
            if event.type is EventType.SUBMITTED
            and event.version == len(self._streams[event.job_id])
        ][:limit]
        return [event for event in found if _due(event) <= now]

    # -- the relay's recovery checkpoint --------------------------------------------

    def live_checkpoint(self) -> LiveCheckpoint | None:
        with self._lock:
            return self._checkpoint

    def save_live_checkpoint(self, position: int, job_ids: Sequence[str]) -> bool:
        with self._lock:
            stands = self._checkpoint is not None and self._checkpoint.position >= position
            if stands and self._checkpoint.position <= len(self.events):  # type: ignore[union-attr]
                return False
            self._checkpoint = LiveCheckpoint(position, list(dict.fromkeys(job_ids)))
            return True


def _seal(
    position: int, job_id: str, version: int, new: NewEvent, now: datetime, prev_hash: str
) -> StoredEvent:
    """The stored event, hashed as ``ledger.store`` hashes it."""
    payload: Mapping[str, Any] = new.data
    if new.due_in is not None:
        payload = {**payload, "due_at": format_time(now + new.due_in)}
    data_json = canonical_json(payload).decode()
    request: Mapping[str, Any] = payload.get("request", {}) if new.type == "enqueued" else {}
    key = request.get("idempotency_key")
    digest = sealed_hash(
        prev_hash, position, job_id, version, new.type.value, data_json, format_time(now),
        new.actor, key,
    )  # fmt: skip
    data = orjson.loads(data_json)
    return StoredEvent(
        position, job_id, version, new.type, data, now, new.actor, key, prev_hash, digest
    )


def _due(event: StoredEvent) -> datetime:
    due = event.data.get("due_at")
    return datetime.min.replace(tzinfo=UTC) if due is None else datetime.fromisoformat(str(due))
