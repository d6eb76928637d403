"""The event store: append-only SQL log with optimistic concurrency and a hash chain.

Appends are serialised: on PostgreSQL every appending transaction first takes one
transaction-scoped advisory lock (``pg_advisory_xact_lock``, keyed by the events
table's OID, so ledgers in different schemas of one database do not wait for each
other); on SQLite, write transactions start with ``BEGIN IMMEDIATE`` (the single
writer lock). Holding the
lock from reading the log head to commit gives three properties at once:

* positions are assigned in commit order, so a reader tailing ``position > N``
  can never skip an event that commits late with a lower position;
* the previous event's hash is known, so each event can seal its predecessor;
* version checks and idempotency look-ups are race-free (the unique indexes on
  ``(job_id, version)`` and ``idempotency_key`` remain as the last line of defence).

Throughput comes from batching: ``append_many`` writes events of many jobs in
one transaction under one lock acquisition. The statements themselves (one
round trip for lock and head, ``COPY`` on PostgreSQL) live in ``ledger.append_sql``.

This module holds the write side. ``EventStore`` inherits every read from
``ledger.log_reader.LogReader``; ``LogHead`` and ``translate_errors`` live there
and are re-exported here for callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from ledger.append_sql import Opening, Row, WriteLimits, for_dialect
from ledger.db import is_sqlite
from ledger.driver_errors import Fault, fault_of, ledger_error
from ledger.errors import ConcurrencyError, DatabaseRefused, IdempotencyConflict, LedgerError
from ledger.events import EventType, NewEvent, StoredEvent, format_time, to_utc
from ledger.job_ids import new_job_id
from ledger.log_reader import LogHead, LogReader, translate_errors
from ledger.request import SettlementRequest
from ledger.schema import events as events_table
from ledger.schema import recovery_checkpoint, recovery_live_jobs
from ledger.sealing import PreparedEnqueue, Stamp, prepare_enqueue, seal

__all__ = [
    "AppendResult",
    "Clock",
    "EnqueueResult",
    "EventStore",
    "LiveCheckpoint",
    "LogHead",
    "PreparedEnqueue",
    "StreamAppend",
    "prepare_enqueue",
    "translate_errors",
]

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events for one job, appended only if the job is still at ``expected_version``."""

    job_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What ``append_many`` wrote, and the streams it skipped as stale."""

    events: list[StoredEvent] = field(default_factory=list)
    rejected: list[ConcurrencyError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """The job a request maps to; ``created`` is false when the key was seen before.

    ``queued`` is false when the job is in the log but Redis refused it for now
    (away, out of memory, read-only): the job stands, and the relay's sweep
    queues it once Redis takes writes again. The caller must not retry it under
    a new key.
    """

    job_id: str
    created: bool
    event: StoredEvent | None = None
    queued: bool = True


@dataclass(frozen=True, slots=True)
class LiveCheckpoint:
    """Every job Redis must hold (waiting or in flight) as of ``position`` in the log."""

    position: int
    job_ids: list[str]


#: the relay's row in ``recovery_checkpoint``
_CHECKPOINT = "relay"


class EventStore(LogReader):
    """Append to the events table (the only code that writes it), and read it (``LogReader``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        new_job_id: Callable[[], str] = new_job_id,
        limits: WriteLimits | None = None,
    ) -> None:
        super().__init__(engine)
        #: the append statements, bounded by ``limits`` (PostgreSQL; see ``WriteLimits``)
        self._sql = for_dialect(engine.dialect, limits)
        self._clock = clock
        #: job ids for new jobs (time-ordered UUIDs; a seeded source makes demos reproducible)
        self.new_job_id = new_job_id
        self._sqlite = is_sqlite(engine)
        #: look the batch's keys up before inserting (see ``enqueue_many``); turned on
        #: by a key the log already held, off again by a batch of only new keys
        self._look_up_keys = False

    # -- writing -----------------------------------------------------------------

    def append(
        self, job_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append ``events`` to one job's stream, or raise ``ConcurrencyError``."""
        result = self.append_many([StreamAppend(job_id, expected_version, events)])
        return result.events

    def append_many(
        self, appends: Sequence[StreamAppend], *, skip_stale: bool = False
    ) -> AppendResult:
        """Append to many streams in one transaction.

        A stream whose version moved on raises ``ConcurrencyError`` and nothing is
        written; with ``skip_stale=True`` it is left out (and listed in
        ``rejected``) while the others are written.
        """
        if not appends:
            return AppendResult()
        job_ids = [item.job_id for item in appends]
        if len(set(job_ids)) != len(job_ids):
            raise ValueError("append_many takes each job at most once per call")
        try:
            with self._opening(job_ids=job_ids) as (conn, head, opening):
                current = opening.versions
                accepted: list[StreamAppend] = []
                rejected: list[ConcurrencyError] = []
                for item in appends:
                    actual = current.get(item.job_id, 0)
                    if actual == item.expected_version:
                        accepted.append(item)
                        continue
                    error = ConcurrencyError(item.job_id, item.expected_version, actual)
                    if not skip_stale:
                        raise error
                    rejected.append(error)
                stored = self._insert(conn, head, accepted)
        except _VersionTaken:
            # the versions were read under the write lock, so only a writer that does
            # not take it gets here; the unique index stopped it (invariant 4)
            raise self._moved_on(appends) from None
        return AppendResult(stored, rejected)

    def _moved_on(self, appends: Sequence[StreamAppend]) -> ConcurrencyError:
        """After ``(job_id, version)`` refused an append: the first stream that moved on."""
        current = self.versions([item.job_id for item in appends])
        moved = [item for item in appends if current.get(item.job_id, 0) != item.expected_version]
        item = (moved or list(appends))[0]
        return ConcurrencyError(item.job_id, item.expected_version, current.get(item.job_id, 0))

    def enqueue(
        self,
        request: SettlementRequest,
        *,
        max_attempts: int,
        delay: timedelta | None = None,
        actor: str = "service",
    ) -> EnqueueResult:
        """Append a new job's ``enqueued`` event, idempotently per request key.

        Same key and same request: the existing job, nothing appended. Same key,
        different request: ``IdempotencyConflict``, nothing appended. A ``delay``
        makes the job due that long after the event's own time (one clock).
        """
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
        """``enqueue`` for a batch, in one transaction; results in the order of ``requests``.

        All or nothing: one conflicting key (against the log or within the batch)
        raises ``IdempotencyConflict`` and appends nothing. A key repeated with
        the same request maps to the one job.

        Keys are new far more often than not, so the batch is first inserted
        without looking its keys up: the log's unique index on the key refuses
        one it already holds, the transaction rolls back, and the batch is
        written again with the look-up. After such a batch the look-up stays on
        until a batch holds only new keys (a client retrying a batch pays one
        failed insert, not one per batch).
        """
        # the requests' records, fingerprints and events are made before the append lock
        # is taken: it serialises every writer of the log, so it is held only for what
        # needs the log (the key look-up, ids, seals, the insert)
        prepared = [
            prepare_enqueue(request, max_attempts=max_attempts, delay=delay, actor=actor)
            for request in requests
        ]
        outcomes = self._enqueue_looking_up(prepared, each=False)
        return [outcome for outcome in outcomes if isinstance(outcome, EnqueueResult)]

    def enqueue_each(
        self, prepared: Sequence[PreparedEnqueue]
    ) -> list[EnqueueResult | IdempotencyConflict]:
        """Many callers' requests in one transaction, each with its own outcome.

        Unlike ``enqueue_many`` a conflicting key fails only its own request
        (given back as the ``IdempotencyConflict`` in its place) and the others
        are written; the first of two different requests under one key wins.
        An error of the transaction itself is raised (nothing was written).
        """
        return self._enqueue_looking_up(prepared, each=True)

    def _enqueue_looking_up(
        self, prepared: Sequence[PreparedEnqueue], *, each: bool
    ) -> list[EnqueueResult | IdempotencyConflict]:
        """Insert without the key look-up first (see ``enqueue_many``), then with it."""
        try:
            if not self._look_up_keys:
                try:
                    return self._enqueue_prepared(prepared, look_up=False, each=each)
                except _KeyTaken:
                    self._look_up_keys = True
            try:
                return self._enqueue_prepared(prepared, look_up=True, each=each)
            except _KeyTaken:
                # every writer holds the append lock, so a key looked up under it stays free
                raise DatabaseRefused(
                    "the log refused the new jobs' idempotency keys although they were looked "
                    "up under the write lock; nothing was enqueued"
                ) from None
        except _VersionTaken:
            raise DatabaseRefused(
                "a new job id met one the log already holds; nothing was enqueued, send again"
            ) from None

    def _enqueue_prepared(
        self, prepared: Sequence[PreparedEnqueue], *, look_up: bool, each: bool
    ) -> list[EnqueueResult | IdempotencyConflict]:
        keys = [item.key for item in prepared] if look_up else []
        with self._opening(keys=keys) as (conn, head, opening):
            known = opening.known_keys
            if look_up and not known:
                self._look_up_keys = False
            results: list[EnqueueResult | IdempotencyConflict | None] = []
            appends: list[StreamAppend] = []
            for key, fingerprint, new in prepared:
                if key in known:
                    job_id, seen = known[key]
                    if seen == fingerprint:
                        results.append(EnqueueResult(job_id, created=False))
                        continue
                    if not each:  # all or nothing: the transaction rolls back
                        raise IdempotencyConflict(key, job_id)
                    results.append(IdempotencyConflict(key, job_id))
                    continue
                job_id = self.new_job_id()
                known[key] = (job_id, fingerprint)
                appends.append(StreamAppend(job_id, 0, [new]))
                results.append(None)
            stored = iter(self._insert(conn, head, appends))
        return [
            result or EnqueueResult((event := next(stored)).job_id, created=True, event=event)
            for result in results
        ]

    # -- the relay's recovery checkpoint (not the log: a hint the log can always replace) --

    def live_checkpoint(self) -> LiveCheckpoint | None:
        """The last recovery's live jobs and position, or None before the first one."""
        table = recovery_checkpoint.outerjoin(recovery_live_jobs, sa.true())
        query = (
            sa.select(recovery_checkpoint.c.position, recovery_live_jobs.c.job_id)
            .select_from(table)
            .where(recovery_checkpoint.c.name == _CHECKPOINT)
        )
        with self._reading() as conn:  # one statement: the position and its jobs agree
            rows = conn.execute(query).all()
        if not rows or int(rows[0][0]) <= 0:
            return None
        return LiveCheckpoint(int(rows[0][0]), [job for _, job in rows if job is not None])

    def save_live_checkpoint(self, position: int, job_ids: Sequence[str]) -> bool:
        """Replace the checkpoint by ``job_ids`` as of ``position``; False if a later one stands.

        Concurrent recoveries take turns on the checkpoint's row; the one that
        read the log further wins. A checkpoint past the log's head is void.
        """
        row = recovery_checkpoint.c
        with translate_errors(), self.engine.begin() as conn:
            stored = conn.execute(
                sa.select(row.position).where(row.name == _CHECKPOINT).with_for_update()
            ).scalar_one_or_none()
            if stored is not None and int(stored) >= position:
                # a later checkpoint stands, unless it is past the log's head (a log
                # restored from an older backup than its checkpoint): then it is void
                head = conn.execute(sa.select(sa.func.max(events_table.c.position))).scalar()
                if int(stored) <= int(head or 0):
                    return False
            conn.execute(recovery_live_jobs.delete())
            unique = list(dict.fromkeys(job_ids))
            for start in range(0, len(unique), 5000):
                rows = [{"job_id": job_id} for job_id in unique[start : start + 5000]]
                conn.execute(recovery_live_jobs.insert(), rows)
            if stored is None:
                seed = {"name": _CHECKPOINT, "position": position}
                conn.execute(recovery_checkpoint.insert(), seed)
            else:
                update = recovery_checkpoint.update().where(row.name == _CHECKPOINT)
                conn.execute(update.values(position=position))
        return True

    @contextmanager
    def _writing(self) -> Iterator[tuple[Connection, LogHead]]:
        """A write transaction holding the append lock, and the log's head under it."""
        with self._opening() as (conn, head, _opening):
            yield conn, head

    @contextmanager
    def _opening(
        self, *, keys: Sequence[str] = (), job_ids: Sequence[str] = ()
    ) -> Iterator[tuple[Connection, LogHead, Opening]]:
        """``_writing``, with the idempotency and version look-ups read under the lock too."""
        with translate_errors(), self.engine.begin() as conn:
            opening = self._sql.open(conn, keys=keys, job_ids=job_ids)
            position, digest, occurred_at = opening.head
            yield conn, LogHead(position, digest, occurred_at, opening.clock), opening

    def _event_time(self, conn: Connection, head: LogHead) -> datetime:
        """The time stamped on the next events: the one clock, never behind the head.

        PostgreSQL: the database's ``clock_timestamp()`` (every worker host shares
        it). SQLite: the machine's UTC clock (one file, one machine). An injected
        clock (tests, demos) wins. Time never runs backwards along positions, so
        "the log as of T" is always a prefix of the log.
        """
        if self._clock is not None:
            now = to_utc(self._clock())
        elif head.clock is not None:
            now = head.clock
        elif self._sqlite:
            now = datetime.now(UTC)
        else:
            now = to_utc(conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one())
        if head.occurred_at is not None and now < head.occurred_at:
            return head.occurred_at
        return now

    def _insert(
        self,
        conn: Connection,
        head: LogHead,
        appends: Sequence[StreamAppend],
    ) -> list[StoredEvent]:
        if not any(item.events for item in appends):
            return []
        now = self._event_time(conn, head)
        # one time for the whole batch: formatted and converted once, not per event
        stamp = Stamp(now, format_time(now), self._sql.time_value(now))
        position, prev_hash = head.position, head.hash
        stored: list[StoredEvent] = []
        rows: list[Row] = []
        for item in appends:
            version = item.expected_version
            for new in item.events:
                position += 1
                version += 1
                event, row = seal(position, item.job_id, version, new, stamp, prev_hash)
                prev_hash = event.hash
                stored.append(event)
                rows.append(row)
        try:
            self._sql.insert(conn, rows)
        except sa_exc.IntegrityError as exc:
            keyed = any(new.type is EventType.ENQUEUED for item in appends for new in item.events)
            if self._sql.is_key_taken(exc, keyed=keyed):
                raise _KeyTaken() from None
            if fault_of(exc) is Fault.UNIQUE:  # (job_id, version): another writer was first
                raise _VersionTaken() from None
            raise ledger_error(exc) from None
        return stored


class _KeyTaken(Exception):
    """The insert met an idempotency key the log already holds (the transaction rolled back)."""


class _VersionTaken(LedgerError):
    """The log refused the append: it holds one of these (job, version) already; nothing
    was appended."""
