"""Reading the event log: every query over the events table, none that writes it.

``LogReader`` holds the read side of the store: the head, one job's stream or
many, the last event of each job, the unfinished jobs, a cheap tail of
positions, and the whole log in pages (``read_all`` as ``StoredEvent``s,
``scan`` as raw rows for replays). Each read runs in its own short read-only
transaction. ``EventStore`` (``ledger.store``) builds its append path on this
class, so ``EventStore(engine).read_all(...)`` is the one object callers hold.

``translate_errors`` (the driver-error edge) and ``LogHead`` live here because
both sides use them; ``ledger.store`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from ledger.append_sql import for_dialect
from ledger.db import READ_ONLY, is_sqlite
from ledger.driver_errors import ledger_error
from ledger.errors import LedgerError
from ledger.events import GENESIS_HASH, OPERATOR_EVENTS, EventType, StoredEvent, as_time, to_utc
from ledger.lifecycle import STATUS_AFTER_EVENT, TERMINAL
from ledger.schema import events as events_table

#: an event as ``LogReader.scan`` reads it: (position, job_id, version, type, data
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


@contextmanager
def translate_errors() -> Iterator[None]:
    """Driver errors become ledger errors at the store's edge, by class and code.

    ``ledger.driver_errors`` sorts them (SQLSTATE, sqlite3 result codes); the
    driver's text goes to the log, never into the ledger error's message.
    """
    try:
        yield
    except LedgerError:
        raise
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        # a session the server ended (an idle-in-transaction timeout, a restart,
        # pg_terminate_backend) is unavailable whatever its code: nothing of it was kept
        raise ledger_error(exc) from None


class LogReader:
    """Read the events table: the queries behind ``EventStore``'s read methods."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # the backend's append statements: ``versions`` shares their look-up
        self._sql = for_dialect(engine.dialect)

    def head(self) -> LogHead:
        """The last event's position and hash."""
        with self._reading() as conn:
            return self._head(conn)

    def read_stream(self, job_id: str) -> list[StoredEvent]:
        """Every event of one job, in version order (empty if there is no such job)."""
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(events_table.c.job_id == job_id)
            .order_by(events_table.c.version)
        )
        with self._reading() as conn:
            return [to_event(row) for row in conn.execute(query)]

    def read_streams(self, job_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        """Every event of each job, in version order, in one read (unknown jobs left out)."""
        found: dict[str, list[StoredEvent]] = {}
        unique = list(dict.fromkeys(job_ids))
        with self._reading() as conn:
            for start in range(0, len(unique), 500):
                query = _streams_query(conn, unique[start : start + 500])
                for row in conn.execute(query, {"ids": unique[start : start + 500]}):
                    event = to_event(row)
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
                    event = to_event(row)
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
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(
                events_table.c.position > after,
                events_table.c.type.not_in(_FINISHING),
                _LAST_OF_ITS_JOB,
            )
            .order_by(events_table.c.position)
            .limit(limit)
        )
        if until is not None:
            query = query.where(events_table.c.position <= until)
        with self._reading() as conn:
            return [to_event(row) for row in conn.execute(query)]

    def submitted_due(self, now: datetime, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        """Payouts a provider holds past their deadline: ``submitted`` events still their job's
        last, due by ``now``, by the ``(type, position)`` index (``after``: read on)."""
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(
                events_table.c.type == EventType.SUBMITTED.value,
                events_table.c.position > after,
                _LAST_OF_ITS_JOB,
            )
            .order_by(events_table.c.position)
            .limit(limit)
        )
        with self._reading() as conn:
            events = [to_event(row) for row in conn.execute(query)]
        return [e for e in events if (due := as_time(e.data.get("due_at"))) is None or due <= now]

    def changes_after(self, after: int, limit: int = 5000) -> list[tuple[int, str, EventType]]:
        """``(position, job_id, type)`` of the events after ``after``: a cheap tail of the log."""
        query = (
            sa.select(events_table.c.position, events_table.c.job_id, events_table.c.type)
            .where(events_table.c.position > after)
            .order_by(events_table.c.position)
            .limit(limit)
        )
        with self._reading() as conn:
            return [(int(p), j, EVENT_TYPES[t]) for p, j, t in conn.execute(query)]

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
        transaction. ``until_position``/``until_time`` (inclusive) stop early;
        ``until_time`` stops at the log position it resolves to (``position_at``).
        """
        until_position = self._bound(until_position, until_time)
        while True:
            query = _page(EVENT_COLUMNS, after, until_position, page_size)
            with self._reading() as conn:
                page = [to_event(row) for row in conn.execute(query)]
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
        with ``data`` the stored JSON text and ``occurred_at`` the UTC time as text
        in SQLite's stored form (``2026-01-01 00:00:00.000000``) on both backends:
        PostgreSQL formats it in the query. No ``StoredEvent``, no JSON decoding,
        no time parsing or ``datetime`` objects: a projection rebuild reads every
        event of the log through here, and its fold takes the day from the text.
        Pages are read like ``read_all``'s, each in its own short read transaction.

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
        until_position = self._bound(until_position, until_time)
        table = events_table
        columns = (
            table.c.position,
            table.c.job_id,
            table.c.version,
            table.c.type,
            table.c.data,
            _utc_text(self.engine, table.c.occurred_at),
            table.c.actor,
        )

        def read(start: int) -> list[RawEvent]:
            query = _page(columns, start, until_position, page_size)
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

    def position_at(self, moment: datetime) -> int:
        """The log as of ``moment``: the position of the last event before the first later one.

        "As of T" is a prefix of the log (time never runs backwards along positions,
        which the database enforces): everything before the first event stamped
        after T. An event stamped earlier than T but written after that one (a
        backdated append) is not part of the prefix, and ``verify`` names it.
        """
        later = sa.select(sa.func.min(events_table.c.position)).where(
            events_table.c.occurred_at > _db_time(moment)
        )
        with self._reading() as conn:
            first_later = conn.execute(later).scalar()
            if first_later is not None:
                return int(first_later) - 1
            return self._head(conn).position

    def _bound(self, until_position: int | None, until_time: datetime | None) -> int | None:
        """The last position a read may return, from either bound (the tighter one)."""
        if until_time is None:
            return until_position
        at = self.position_at(until_time)
        return at if until_position is None else min(at, until_position)

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


def _utc_text(engine: Engine, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A stored time as UTC text in SQLite's stored form (what SQLite holds already)."""
    if is_sqlite(engine):
        # typed as text so SQLAlchemy leaves the stored value alone
        return sa.type_coerce(column, sa.Text)
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")


def _page(
    columns: Sequence[sa.ColumnElement[Any]],
    after: int,
    until_position: int | None,
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
    return query


def _db_time(moment: datetime) -> datetime:
    """Times are bound as UTC (SQLite stores them without an offset)."""
    return to_utc(moment)


_LATER = events_table.alias("later")
#: the event is its job's last: one backward probe of the ``(job_id, version)`` index
_LAST_OF_ITS_JOB = events_table.c.version == (
    sa.select(sa.func.max(_LATER.c.version))
    .where(_LATER.c.job_id == events_table.c.job_id)
    .scalar_subquery()
)

#: the event types that finish a job for good (its stream ends with one of them), and the
#: operator stream's (no job: nothing of it is a job for the hot queue)
_FINISHING = sorted(
    {event.value for event, after in STATUS_AFTER_EVENT.items() if after in TERMINAL}
    | OPERATOR_EVENTS
)

#: the columns a ``StoredEvent`` is read from, in the order ``to_event`` unpacks them
EVENT_COLUMNS = tuple(
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
EVENT_TYPES = {member.value: member for member in EventType}


def to_event(row: Sequence[Any]) -> StoredEvent:
    """A row of ``EVENT_COLUMNS`` as the typed event (time in UTC, data decoded)."""
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
        EVENT_TYPES[kind],
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
            sa.select(*EVENT_COLUMNS)
            .where(events_table.c.job_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(events_table.c.job_id, events_table.c.version)
        )
    ids = _id_array(job_ids)
    stream = (
        sa.select(*EVENT_COLUMNS)
        .where(events_table.c.job_id == ids.c.job_id)
        .order_by(events_table.c.version)
        .lateral("stream")
    )
    return sa.select(*stream.c).select_from(ids.join(stream, sa.true()))


def _latest_query(conn: Connection, job_ids: Sequence[str]) -> sa.Select[Any]:
    """The last event of each job in ``:ids``: one backward index probe per id."""
    if conn.dialect.name != "postgresql":
        later = events_table.alias("later")
        return sa.select(*EVENT_COLUMNS).where(
            events_table.c.job_id.in_(sa.bindparam("ids", expanding=True)),
            ~sa.exists().where(
                later.c.job_id == events_table.c.job_id,
                later.c.version > events_table.c.version,
            ),
        )
    ids = _id_array(job_ids)
    last = (
        sa.select(*EVENT_COLUMNS)
        .where(events_table.c.job_id == ids.c.job_id)
        .order_by(events_table.c.version.desc())
        .limit(1)
        .lateral("last")
    )
    return sa.select(*last.c).select_from(ids.join(last, sa.true()))
