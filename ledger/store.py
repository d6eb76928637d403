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
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from ledger.append_sql import Opening, Row, for_dialect
from ledger.db import READ_ONLY, is_sqlite
from ledger.errors import (
    ConcurrencyError,
    DatabaseUnavailable,
    IdempotencyConflict,
    LedgerError,
    SchemaNotReady,
)
from ledger.events import (
    GENESIS_HASH,
    EventType,
    NewEvent,
    StoredEvent,
    format_time,
    sealed_hash,
    to_utc,
)
from ledger.request import SettlementRequest, canonical_json, fingerprint_of
from ledger.schema import events as events_table

Clock = Callable[[], datetime]

#: an event as ``EventStore.scan`` reads it: (position, job_id, version, type, data
#: JSON text, occurred_at as the driver gives it, actor)
RawEvent = tuple[int, str, int, str, str, Any, str]


@dataclass(frozen=True, slots=True)
class LogHead:
    """The last event of the log (position 0 and the genesis hash when empty)."""

    position: int = 0
    hash: str = GENESIS_HASH
    occurred_at: datetime | None = None
    #: the database's clock, read with the head under the append lock (PostgreSQL)
    clock: datetime | None = field(default=None, compare=False)


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
    """The job a request maps to; ``created`` is false when the key was seen before."""

    job_id: str
    created: bool
    event: StoredEvent | None = None


@contextmanager
def translate_errors() -> Iterator[None]:
    """Driver errors become ledger errors at the store's edge."""
    try:
        yield
    except LedgerError:
        raise
    except (sa_exc.ProgrammingError, sa_exc.OperationalError) as exc:
        text = str(exc.orig).lower()
        if "no such table" in text or ("does not exist" in text and "relation" in text):
            raise SchemaNotReady() from None
        if isinstance(exc, sa_exc.OperationalError):
            raise DatabaseUnavailable(
                f"the database cannot be reached or refused the operation: {exc.orig}"
            ) from None
        raise
    except sa_exc.InterfaceError as exc:
        raise DatabaseUnavailable(f"the database connection failed: {exc.orig}") from None


class EventStore:
    """Append and read the events table. The only code that writes it."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        new_job_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.engine = engine
        self._clock = clock
        #: job ids for new jobs (random UUIDs; a seeded source makes demos reproducible)
        self.new_job_id = new_job_id
        self._sqlite = is_sqlite(engine)
        self._sql = for_dialect(engine.dialect)

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
        return AppendResult(stored, rejected)

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
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if delay is not None and delay < timedelta(0):
            raise ValueError("delay must not be negative")
        keys = [request.idempotency_key for request in requests]
        with self._opening(keys=keys) as (conn, head, opening):
            known = opening.known_keys
            results: list[EnqueueResult | None] = []
            appends: list[StreamAppend] = []
            for request in requests:
                record = request.as_record()  # dumped once: fingerprint and event data
                key, fingerprint = request.idempotency_key, fingerprint_of(record)
                if key in known:
                    job_id, seen = known[key]
                    if seen != fingerprint:
                        raise IdempotencyConflict(key, job_id)
                    results.append(EnqueueResult(job_id, created=False))
                    continue
                job_id = self.new_job_id()
                known[key] = (job_id, fingerprint)
                data: dict[str, Any] = {
                    "request": record,
                    "fingerprint": fingerprint,
                    "max_attempts": max_attempts,
                    "due_at": None,
                }
                new = NewEvent(EventType.ENQUEUED, data, actor, due_in=delay or None)
                appends.append(StreamAppend(job_id, 0, [new]))
                results.append(None)
            stored = iter(self._insert(conn, head, appends))
        return [
            result or EnqueueResult((event := next(stored)).job_id, created=True, event=event)
            for result in results
        ]

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
        stamp = _Stamp(now, format_time(now), self._sql.time_value(now))
        position, prev_hash = head.position, head.hash
        stored: list[StoredEvent] = []
        rows: list[Row] = []
        for item in appends:
            version = item.expected_version
            for new in item.events:
                position += 1
                version += 1
                event, row = _seal(position, item.job_id, version, new, stamp, prev_hash)
                prev_hash = event.hash
                stored.append(event)
                rows.append(row)
        try:
            self._sql.insert(conn, rows)
        except sa_exc.IntegrityError as exc:
            raise LedgerError(f"the log refused the append: {exc.orig}") from None
        return stored

    # -- reading -----------------------------------------------------------------

    def head(self) -> LogHead:
        """The last event's position and hash."""
        with self._reading() as conn:
            return self._head(conn)

    def read_stream(self, job_id: str) -> list[StoredEvent]:
        """Every event of one job, in version order (empty if there is no such job)."""
        query = (
            sa.select(*_EVENT_COLUMNS)
            .where(events_table.c.job_id == job_id)
            .order_by(events_table.c.version)
        )
        with self._reading() as conn:
            return [_to_event(row) for row in conn.execute(query)]

    def read_streams(self, job_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        """Every event of each job, in version order, in one read (unknown jobs left out)."""
        found: dict[str, list[StoredEvent]] = {}
        unique = list(dict.fromkeys(job_ids))
        with self._reading() as conn:
            for start in range(0, len(unique), 500):
                query = _streams_query(conn, unique[start : start + 500])
                for row in conn.execute(query, {"ids": unique[start : start + 500]}):
                    event = _to_event(row)
                    found.setdefault(event.job_id, []).append(event)
        return found

    def latest_events(self, job_ids: Sequence[str]) -> dict[str, StoredEvent]:
        """The last event of each job, one index probe per job (unknown jobs left out)."""
        found: dict[str, StoredEvent] = {}
        unique = list(dict.fromkeys(job_ids))
        with self._reading() as conn:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                for row in conn.execute(_latest_query(conn, chunk), {"ids": chunk}):
                    event = _to_event(row)
                    found[event.job_id] = event
        return found

    def unfinished(
        self, after: int = 0, limit: int = 5000, *, until: int | None = None
    ) -> list[StoredEvent]:
        """The last event of each job not completed, among the events after ``after``.

        A job's last event says where it stands (waiting, due when; processing,
        leased until when; failed; dead), so this is what rebuilding the hot
        queue needs, without folding the log. A page in position order (pass the
        last position seen to read on): the log is walked once, each candidate
        checked by one backward probe of the ``(job_id, version)`` index. With
        ``until``, jobs changed after that position are left out.
        """
        later = events_table.alias("later")
        last_version = (
            sa.select(sa.func.max(later.c.version))
            .where(later.c.job_id == events_table.c.job_id)
            .scalar_subquery()
        )
        query = (
            sa.select(*_EVENT_COLUMNS)
            .where(
                events_table.c.position > after,
                events_table.c.type != EventType.COMPLETED.value,
                events_table.c.version == last_version,
            )
            .order_by(events_table.c.position)
            .limit(limit)
        )
        if until is not None:
            query = query.where(events_table.c.position <= until)
        with self._reading() as conn:
            return [_to_event(row) for row in conn.execute(query)]

    def changes_after(self, after: int, limit: int = 5000) -> list[tuple[int, str, EventType]]:
        """``(position, job_id, type)`` of the events after ``after``: a cheap tail of the log."""
        query = (
            sa.select(events_table.c.position, events_table.c.job_id, events_table.c.type)
            .where(events_table.c.position > after)
            .order_by(events_table.c.position)
            .limit(limit)
        )
        with self._reading() as conn:
            return [(int(p), j, _EVENT_TYPES[t]) for p, j, t in conn.execute(query)]

    def read_all(
        self,
        after: int = 0,
        *,
        until_position: int | None = None,
        until_time: datetime | None = None,
        page_size: int = 2000,
    ) -> Iterator[StoredEvent]:
        """Stream the log in position order from ``after`` (exclusive), in pages.

        Memory stays flat: one page at a time, each read in its own short
        transaction. ``until_position``/``until_time`` (inclusive) stop early.
        """
        while True:
            query = _page(_EVENT_COLUMNS, after, until_position, until_time, page_size)
            with self._reading() as conn:
                page = [_to_event(row) for row in conn.execute(query)]
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].position

    def scan(
        self,
        after: int = 0,
        *,
        until_position: int | None = None,
        until_time: datetime | None = None,
        page_size: int = 10_000,
    ) -> Generator[list[RawEvent], None, None]:
        """The log from ``after`` (exclusive) as raw rows, one list per page: for replays.

        Each row is ``(position, job_id, version, type, data, occurred_at, actor)``
        with ``data`` the stored JSON text and ``occurred_at`` as the driver gives
        it (SQLite: the stored UTC text; PostgreSQL: an aware datetime). No
        ``StoredEvent``, no JSON decoding, no time parsing: a projection rebuild
        reads every event of the log through here. Pages are read like ``read_all``'s,
        each in its own short read transaction.

        On PostgreSQL the next page is read in a thread while the caller works
        on this one (at most one page ahead): the server runs the query and
        psycopg waits for it without the GIL, so the fold goes on meanwhile. An
        error in the reader is raised here, in the caller; closing the generator
        waits for the page in flight, so no thread outlives it. SQLite pages are
        read in the caller's thread: sqlite3 lets go of the GIL once per row, and
        a reader thread fighting the fold for it cost more CPU than it saved
        (measured on a 1M-event rebuild: 11.8 s became 13.6 s, system time
        2.3 s became 3.7 s).
        """
        table = events_table
        columns = (
            table.c.position,
            table.c.job_id,
            table.c.version,
            table.c.type,
            table.c.data,
            # typed as text so SQLAlchemy leaves the driver's value alone
            sa.type_coerce(table.c.occurred_at, sa.Text),
            table.c.actor,
        )

        def read(start: int) -> list[RawEvent]:
            query = _page(columns, start, until_position, until_time, page_size)
            with self._reading() as conn:
                # the driver's own tuples: no result processing applies to these
                # columns, so building SQLAlchemy rows would only add cost
                return list(conn.execute(query).cursor.fetchall())

        if is_sqlite(self.engine):
            page = read(after)
            while page:
                yield page
                if len(page) < page_size:
                    return
                page = read(page[-1][0])
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-read") as reading:
            ahead: Future[list[RawEvent]] | None = reading.submit(read, after)
            while ahead is not None:
                page = ahead.result()
                full = len(page) == page_size
                ahead = reading.submit(read, page[-1][0]) if full else None
                if page:
                    yield page

    def job_id_for_key(self, idempotency_key: str) -> str | None:
        """The job an idempotency key belongs to, if any."""
        query = sa.select(events_table.c.job_id).where(
            events_table.c.idempotency_key == idempotency_key
        )
        with self._reading() as conn:
            return conn.execute(query).scalar_one_or_none()

    def versions(self, job_ids: Sequence[str]) -> dict[str, int]:
        """Current stream version of each job (jobs with no events are left out)."""
        with self._reading() as conn:
            return self._sql.versions(conn, job_ids)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with (
            translate_errors(),
            self.engine.connect() as conn,
            conn.execution_options(**{READ_ONLY: True}).begin(),
        ):
            yield conn

    @staticmethod
    def _head(conn: Connection) -> LogHead:
        row = conn.execute(
            sa.select(events_table.c.position, events_table.c.hash, events_table.c.occurred_at)
            .order_by(events_table.c.position.desc())
            .limit(1)
        ).first()
        if row is None:
            return LogHead()
        return LogHead(row.position, row.hash, to_utc(row.occurred_at))


def _page(
    columns: Sequence[sa.ColumnElement[Any]],
    after: int,
    until_position: int | None,
    until_time: datetime | None,
    size: int,
) -> sa.Select[Any]:
    """One page of the log after ``after``, in position order, within the bounds."""
    query = (
        sa.select(*columns)
        .where(events_table.c.position > after)
        .order_by(events_table.c.position)
        .limit(size)
    )
    if until_position is not None:
        query = query.where(events_table.c.position <= until_position)
    if until_time is not None:
        query = query.where(events_table.c.occurred_at <= _db_time(until_time))
    return query


def _db_time(moment: datetime) -> datetime:
    """Times are bound as UTC (SQLite stores them without an offset)."""
    return to_utc(moment)


@dataclass(frozen=True, slots=True)
class _Stamp:
    """A batch's one event time: as a datetime, as hashed text, as the driver binds it."""

    moment: datetime
    text: str
    value: Any


def _seal(
    position: int,
    job_id: str,
    version: int,
    new: NewEvent,
    stamp: _Stamp,
    prev_hash: str,
) -> tuple[StoredEvent, Row]:
    payload = new.data
    if new.due_in is not None:
        payload = {**payload, "due_at": format_time(stamp.moment + new.due_in)}
    data_json = canonical_json(payload).decode()
    request: Mapping[str, Any] = payload.get("request", {}) if new.type == "enqueued" else {}
    key = request.get("idempotency_key")
    # the plain text of the type: a str-enum member would be bound by its name by some drivers
    kind = _TYPE_TEXT[new.type]
    digest = sealed_hash(
        prev_hash, position, job_id, version, kind, data_json, stamp.text, new.actor, key
    )
    # read back from the stored text, so appended and re-read events are identical
    data = orjson.loads(data_json)
    event = StoredEvent(
        position, job_id, version, new.type, data, stamp.moment, new.actor, key, prev_hash, digest
    )
    row = (
        position,
        job_id,
        version,
        kind,
        data_json,
        stamp.value,
        new.actor,
        key,
        request.get("user_id"),
        request.get("place_id"),
        request.get("mission_id"),
        prev_hash,
        digest,
    )
    return event, row


#: the columns a ``StoredEvent`` is read from, in the order ``_to_event`` unpacks them
_EVENT_COLUMNS = tuple(
    events_table.c[name]
    for name in (
        "position",
        "job_id",
        "version",
        "type",
        "data",
        "occurred_at",
        "actor",
        "idempotency_key",
        "prev_hash",
        "hash",
    )
)
_EVENT_TYPES = {member.value: member for member in EventType}
_TYPE_TEXT = {member: member.value for member in EventType}


def _to_event(row: Sequence[Any]) -> StoredEvent:
    # unpacked by position: named access on a Row costs a lookup per field, and
    # replay reads every event of the log through here
    (position, job_id, version, kind, data, occurred_at, actor, key, prev, digest) = row
    # SQLite keeps UTC without an offset; PostgreSQL answers in the session's zone
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    else:
        occurred_at = occurred_at.astimezone(UTC)
    return StoredEvent(
        position,
        job_id,
        version,
        _EVENT_TYPES[kind],
        orjson.loads(data),
        occurred_at,
        actor,
        key,
        prev,
        digest,
    )


# -- batched reads for the queue (one statement per batch of job ids) --------------


def _id_array(job_ids: Sequence[str]) -> Any:
    """``unnest(:ids)`` as a table of one ``job_id`` column (PostgreSQL)."""
    param = sa.bindparam("ids", list(job_ids), type_=sa.ARRAY(sa.String))
    return sa.func.unnest(param).table_valued("job_id").render_derived(name="ids")


def _streams_query(conn: Connection, job_ids: Sequence[str]) -> sa.Select[Any]:
    """Every event of the jobs ``:ids``, by job and version.

    On PostgreSQL one index range scan per id (a lateral join over the id
    array), whatever the planner's statistics say; SQLite's ``IN`` uses the index.
    """
    if conn.dialect.name != "postgresql":
        return (
            sa.select(*_EVENT_COLUMNS)
            .where(events_table.c.job_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(events_table.c.job_id, events_table.c.version)
        )
    ids = _id_array(job_ids)
    stream = (
        sa.select(*_EVENT_COLUMNS)
        .where(events_table.c.job_id == ids.c.job_id)
        .order_by(events_table.c.version)
        .lateral("stream")
    )
    return sa.select(*stream.c).select_from(ids.join(stream, sa.true()))


def _latest_query(conn: Connection, job_ids: Sequence[str]) -> sa.Select[Any]:
    """The last event of each job in ``:ids``: one backward index probe per id."""
    if conn.dialect.name != "postgresql":
        later = events_table.alias("later")
        return sa.select(*_EVENT_COLUMNS).where(
            events_table.c.job_id.in_(sa.bindparam("ids", expanding=True)),
            ~sa.exists().where(
                later.c.job_id == events_table.c.job_id,
                later.c.version > events_table.c.version,
            ),
        )
    ids = _id_array(job_ids)
    last = (
        sa.select(*_EVENT_COLUMNS)
        .where(events_table.c.job_id == ids.c.job_id)
        .order_by(events_table.c.version.desc())
        .limit(1)
        .lateral("last")
    )
    return sa.select(*last.c).select_from(ids.join(last, sa.true()))
