"""Raw rows of the events table and their seals: what ``verify`` reads and recomputes.

Rows are read as stored (``data`` is the stored text, never re-serialised), so a
recomputed hash covers exactly the bytes in the database. They are read with the
driver's own cursor, as plain tuples, a page per short transaction: building an
ORM row and a ``datetime`` per event cost more than hashing it.

The hash covers the time as ``format_time`` writes it (``2026-01-01T00:00:00.000000Z``).
The database produces that text itself (``_TIME_TEXT``): PostgreSQL formats the
stored instant with ``to_char`` in UTC; SQLite stores the time as text
(``2026-01-01 00:00:00.000000``, SQLAlchemy's format), so the text is re-cut.
A stored time the fast form cannot express exactly (SQLite text in another
format, a year outside 1..9999) comes back marked, and Python converts it the
slow way (``_fallback_time_text``), so the text is always what ``format_time``
gives for the value the ORM would read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import READ_ONLY, is_sqlite
from ledger.events import format_time, sealed_hash, to_utc
from ledger.store import translate_errors

#: one row as the page query returns it, in ``RawRow`` field order
RawValues = tuple[Any, ...]


class RawRow(NamedTuple):
    """A row as stored; ``occurred_at`` is the hash's time text (``None``: no valid time)."""

    position: int
    job_id: str
    version: int
    type: str
    data: str
    occurred_at: str | None
    actor: str
    idempotency_key: str | None
    user_id: str | None
    place_id: str | None
    mission_id: str | None
    prev_hash: str
    hash: str
    #: False when SQLite holds the time in another text than the canonical one
    time_form_ok: bool = True
    #: the stored text of a time that is not in the canonical form
    stored_time: str | None = None


#: prefix of a time that needs Python's conversion (the database's fast form could not say it)
SLOW_TIME = "!"

_DIGIT = "[0-9]"
#: SQLAlchemy's SQLite text for a time, year 1000 or later (earlier years are unpadded in
#: ``format_time``: they take the slow way)
_SQLITE_CANONICAL = (
    f"[1-9]{_DIGIT * 3}-{_DIGIT * 2}-{_DIGIT * 2} "
    f"{_DIGIT * 2}:{_DIGIT * 2}:{_DIGIT * 2}.{_DIGIT * 6}"
)

#: the hash's time text, computed by the database
_TIME_TEXT = {
    # the one space is the date/time separator (cheaper than cutting the text apart)
    "sqlite": (
        f"CASE WHEN occurred_at GLOB '{_SQLITE_CANONICAL}' "
        "THEN replace(occurred_at, ' ', 'T') || 'Z' "
        f"ELSE '{SLOW_TIME}' || occurred_at END"
    ),
    # ``format_time`` has an unpadded year, hence the ``ltrim`` (only years below 1000
    # start with a zero); BC instants have no datetime (and to_char hides the era):
    # NULL, which seals nothing
    "postgresql": (
        "CASE WHEN occurred_at >= TIMESTAMPTZ '0001-01-01 00:00:00+00' "
        "THEN ltrim(to_char(occurred_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '0') END"
    ),
}

_COLUMNS = (
    "position, job_id, version, type, data, {time}, actor, idempotency_key, "
    "user_id, place_id, mission_id, prev_hash, hash"
)


def seal(row: RawRow, *, position: int | None = None) -> str:
    """The hash ``row`` would carry if it had been sealed at ``position`` (default: its own)."""
    if row.occurred_at is None:
        return ""  # no time text: it seals nothing
    return sealed_hash(
        row.prev_hash,
        row.position if position is None else position,
        row.job_id,
        row.version,
        row.type,
        row.data,
        row.occurred_at,
        row.actor,
        row.idempotency_key,
    )


class RowReader:
    """Read raw rows: pages in position order, and the point look-ups ``verify`` needs.

    Every call runs in its own short read transaction (no long-lived snapshot that
    would hold back SQLite's WAL checkpoints or PostgreSQL's vacuum).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = "sqlite" if is_sqlite(engine) else "postgresql"
        self._mark = "?" if dialect == "sqlite" else "%s"
        self._select = "SELECT " + _COLUMNS.format(time=_TIME_TEXT[dialect]) + " FROM events "
        # SQLite keeps times as text: a text the fast form rejects is read as the ORM reads it
        column_type = sa.DateTime(timezone=True).dialect_impl(engine.dialect)
        self._parse: Callable[[str], Any] | None = (
            column_type.result_processor(engine.dialect, None) if dialect == "sqlite" else None
        )
        #: the text the ledger writes for an instant (SQLite), to tell a re-spelled time
        self._bind: Callable[[Any], Any] | None = (
            column_type.bind_processor(engine.dialect) if dialect == "sqlite" else None
        )

    def _fetch(self, where: str, params: tuple[Any, ...], tail: str = "") -> list[RawValues]:
        sql = self._select + where.replace("?", self._mark) + tail
        with (
            translate_errors(),
            _driver_errors(self.engine, sql),
            self.engine.connect() as conn,
            conn.execution_options(**{READ_ONLY: True}).begin(),
        ):
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def _one(self, where: str, params: tuple[Any, ...], tail: str = "") -> RawRow | None:
        rows = self._fetch(where, params, tail + " LIMIT 1")
        return self.row(rows[0]) if rows else None

    def row(self, values: RawValues) -> RawRow:
        """A page row as a ``RawRow``, its time converted the slow way if it needs it."""
        row = RawRow._make((*values, True, None))
        text = row.occurred_at
        if text is not None and text.startswith(SLOW_TIME):
            stored = text[1:]
            converted = _fallback_time_text(self._parse, stored)
            canonical = converted is None or self._canonical(stored)
            return row._replace(
                occurred_at=converted,
                time_form_ok=canonical,
                stored_time=None if canonical else stored,
            )
        return row

    def _canonical(self, stored: str) -> bool:
        """Whether SQLite time text is what the ledger writes for the instant it holds."""
        if self._parse is None or self._bind is None:
            return True
        try:
            return bool(self._bind(self._parse(stored)) == stored)
        except (ValueError, TypeError, OverflowError):
            return False

    def pages(self, after: int, until: int, page_size: int = 10_000) -> Iterator[list[RawValues]]:
        """Pages of rows with ``after < position <= until``, in position order.

        Rows are plain tuples in ``RawRow`` order (``row()`` makes one a ``RawRow``).
        The next page is read in a thread while the caller works on this one: the
        database (its server process, or SQLite's C code) works while Python hashes.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-read") as reading:
            ahead: Future[list[RawValues]] | None
            ahead = reading.submit(self._page, after, until, page_size)
            while ahead is not None:
                page = ahead.result()
                full = len(page) == page_size
                ahead = reading.submit(self._page, page[-1][0], until, page_size) if full else None
                if page:
                    yield page

    def _page(self, after: int, until: int, page_size: int) -> list[RawValues]:
        return self._fetch(
            "WHERE position > ? AND position <= ? ",
            (after, until, page_size),
            "ORDER BY position LIMIT " + self._mark,
        )

    def head_position(self) -> int:
        """The highest position in the log (0 when empty)."""
        with (
            translate_errors(),
            self.engine.connect() as conn,
            conn.execution_options(**{READ_ONLY: True}).begin(),
        ):
            head = conn.exec_driver_sql("SELECT coalesce(max(position), 0) FROM events").scalar()
        return int(head or 0)

    def last_before(self, position: int) -> RawRow | None:
        """The row just before ``position`` (the trusted predecessor of a partial walk)."""
        return self._one("WHERE position < ? ", (position,), "ORDER BY position DESC")

    def at(self, position: int) -> RawRow | None:
        return self._one("WHERE position = ? ", (position,))

    def after(self, position: int) -> RawRow | None:
        return self._one("WHERE position > ? ", (position,), "ORDER BY position")

    def with_hash(self, digest: str) -> RawRow | None:
        """The row whose hash is ``digest`` (a full scan: used only to explain a failure)."""
        return self._one("WHERE hash = ? ", (digest,))

    def latest_of_job(self, job_id: str, before: int) -> RawRow | None:
        """The job's last event before ``position`` (by the ``(job_id, version)`` index)."""
        return self._one(
            "WHERE job_id = ? AND position < ? ", (job_id, before), "ORDER BY position DESC"
        )


def _fallback_time_text(parse: Callable[[str], Any] | None, stored: str) -> str | None:
    """``format_time`` of a stored SQLite time text as the ORM reads it (None: unreadable)."""
    if parse is None:
        return None
    try:
        return format_time(to_utc(parse(stored)))
    except (ValueError, TypeError, OverflowError):
        return None


@contextmanager
def _driver_errors(engine: Engine, sql: str) -> Iterator[None]:
    """Raw cursor errors, wrapped as SQLAlchemy wraps them (so ``translate_errors`` maps them)."""
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error) from exc
