"""``connect``: one read-side handle on the log for reconciliation scripts.

A ``Connection`` reads the events table and nothing else: events in pages,
the log folded as of a position or a time, ``verify`` and ``reconcile`` (the
reports the CLI prints), and ``follow`` (batches handed to a callback at least
once; the script stores its position in its own transaction, with its own
writes, as eventsourcing's tracking records do). It never writes the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Never

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine

from ledger.audit import checkpoint as checkpoints
from ledger.audit.statement import (
    DEFAULT_TOLERANCE,
    Period,
    StatementDiff,
    StatementLine,
    diff_statement,
    parse_statement,
    statement_period,
)
from ledger.audit.verify import DEFAULT_MAX_FINDINGS, VerifyResult, verify_log
from ledger.business_time import day_end, day_start
from ledger.compose.reconcile import (
    ReconcileReport,
    projection_checks,
    read_settlements,
    reconcile,
    statement_check,
)
from ledger.db import READ_ONLY, create_engine, is_sqlite
from ledger.errors import InvalidRequest, InvalidStatement, PositionPastHead
from ledger.events import EventType, StoredEvent
from ledger.log_reader import LogReader, to_event, translate_errors
from ledger.scripts.reading import EventQuery, aware, event_query
from ledger.scripts.state import LogState, fold_prefix
from ledger.settings import Settings

#: events per page unless a script asks otherwise
PAGE_SIZE = 2000

#: ``follow``'s callback: one batch of events, in position order
Handler = Callable[[Sequence[StoredEvent]], None]


@contextmanager
def connect(
    url: str | None = None, *, read_only: bool = True, settings: Settings | None = None
) -> Iterator[Connection]:
    """Open the log at ``url`` (default: ``LEDGER_DATABASE_URL``) for a script.

    ``read_only`` (the default) makes the database refuse writes on this
    connection too (PostgreSQL read-only transactions, SQLite ``query_only``),
    so a script cannot change the ledger even by mistake; pass ``False`` only
    where read-only transactions are not available. The log is checked at once
    (``SchemaNotReady``, ``DatabaseUnavailable``), and closed on leaving.
    """
    settings = settings if settings is not None else Settings()
    engine = create_engine(
        url or settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
    )
    try:
        if read_only:
            engine = _read_only(engine)
        connection = Connection(engine, settings)
        connection.head()
        yield connection
    finally:
        engine.dispose()


def _read_only(engine: Engine) -> Engine:
    if not is_sqlite(engine):
        return engine.execution_options(postgresql_readonly=True)

    @sa_event.listens_for(engine, "connect")
    def _query_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=ON")

    return engine


class Connection:
    """The log, read for a script. Build it with ``connect``."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._reader = LogReader(engine)
        self.settings = settings

    # -- the log -----------------------------------------------------------------

    def head(self) -> int:
        """The position of the log's last event (0 when the log is empty)."""
        return self._reader.head().position

    def events(
        self,
        *,
        after: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        type: EventType | str | Iterable[EventType | str] | None = None,
        job: str | None = None,
        user: str | None = None,
        place: str | None = None,
        mission: str | None = None,
        page_size: int = PAGE_SIZE,
        **unknown: Never,
    ) -> Iterator[StoredEvent]:
        """Events after position ``after`` matching every filter given, in position order.

        ``since`` (inclusive) and ``until`` (exclusive) are aware datetimes;
        ``type`` one event type or several; ``job``, ``user``, ``place``,
        ``mission`` ids. Read a page (``page_size`` events) per short read
        transaction: memory stays flat however long the log. Events appended
        while the script iterates are read too, up to the page that comes
        back short. Bad filters raise before anything is read.
        """
        query = event_query(
            since=since,
            until=until,
            type=type,
            job=job,
            user=user,
            place=place,
            mission=mission,
            unknown=unknown,
        )
        self._check_position(after)
        _check_page_size(page_size)
        return self._pages(query, after, page_size)

    def follow(
        self,
        after: int,
        handle: Handler,
        *,
        page_size: int = 500,
        poll_seconds: float = 1.0,
        stop: Callable[[], bool] | None = None,
        until_head: bool = False,
    ) -> int:
        """Hand the log after ``after`` to ``handle``, batch by batch; return the last position.

        At least once: a batch is handed again after a crash unless the script
        stored its last position. So ``handle`` writes its changes and the
        batch's last position in ONE transaction of its own database, and the
        script starts again from the stored position (an idempotent follower,
        as eventsourcing's tracking records make one). When caught up it polls
        every ``poll_seconds``; it returns once ``stop()`` is true, or, with
        ``until_head``, once it has reached the head.
        """
        self._check_position(after)
        _check_page_size(page_size)
        if poll_seconds < 0:
            raise InvalidRequest("poll_seconds must not be negative", field="poll_seconds")
        query = EventQuery()
        while not (stop is not None and stop()):
            batch = self._page(query, after, page_size)
            if batch:
                handle(batch)
                after = batch[-1].position
            if len(batch) < page_size:
                if until_head:
                    return after
                time.sleep(poll_seconds)
        return after

    # -- folds ---------------------------------------------------------------------

    def state(self, at: int | datetime | None = None) -> LogState:
        """The read models as of position ``at``, or time ``at`` (aware), or the head.

        As of a time: the log's prefix before the first event stamped later.
        """
        if at is None or isinstance(at, int):
            position = self.head() if at is None else at
            self._check_position(position)
            return fold_prefix(
                self._reader, position, self._time_at(position), self.settings.business_zone
            )
        moment = aware(at, "at")
        if moment is None:  # aware() returns a time for a time
            raise InvalidRequest("at is required", field="at")
        position = self._reader.position_at(moment)
        return fold_prefix(self._reader, position, moment, self.settings.business_zone)

    def history(self, job_id: str) -> list[StoredEvent]:
        """Every event of one job, in version order (empty when there is no such job)."""
        return self._reader.read_stream(job_id)

    # -- the auditors' checks -------------------------------------------------------

    def verify(
        self,
        *,
        from_position: int = 1,
        checkpoint: Path | None = None,
        workers: int = 1,
        max_findings: int = DEFAULT_MAX_FINDINGS,
    ) -> VerifyResult:
        """``ledger verify``: every hash and link, event times, versions and lifecycle.

        ``checkpoint`` is a signed checkpoint file (key: ``LEDGER_CHECKPOINT_KEY``).
        """
        for name, value in (
            ("from_position", from_position),
            ("workers", workers),
            ("max_findings", max_findings),
        ):
            if value < 1:
                raise InvalidRequest(f"{name} must be at least 1", field=name)
        anchors: dict[int, str] = {}
        if checkpoint is not None:
            secret = self.settings.checkpoint_key
            key = checkpoints.checkpoint_key(secret.get_secret_value() if secret else None)
            anchors = checkpoints.anchors(checkpoints.read_checkpoint(checkpoint, key))
        with translate_errors():
            return verify_log(
                self._engine,
                from_position=from_position,
                anchors=anchors,
                workers=workers,
                max_findings=max_findings,
            )

    def reconcile(
        self,
        statement: Path | Sequence[StatementLine] | None = None,
        *,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> ReconcileReport:
        """``ledger reconcile``: a fresh fold against the live projections, conservation,
        and with ``statement`` the period's settlements against it (same report).

        ``start``/``end`` bound the period (a ``date`` is a business day in
        ``LEDGER_BUSINESS_TIMEZONE``, both ends included; default: the
        statement's own span).
        """
        checks = projection_checks()
        if statement is not None:
            lines = self.statement_lines(statement)
            period = self._period(lines, start, end)
            checks.append(statement_check(lines, period=period, tolerance=tolerance))
        elif start is not None or end is not None:
            raise InvalidRequest("start and end give a statement's period: pass a statement")
        with translate_errors():
            return reconcile(self._engine, checks)

    def statement_diff(
        self,
        statement: Path | Sequence[StatementLine],
        *,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> StatementDiff:
        """The statement check alone, typed: what is missing, extra, mismatched, duplicated."""
        lines = self.statement_lines(statement)
        period = self._period(lines, start, end)
        with translate_errors():
            return diff_statement(
                read_settlements(self._engine), lines, period=period, tolerance=tolerance
            )

    @staticmethod
    def statement_lines(statement: Path | Sequence[StatementLine]) -> list[StatementLine]:
        """A statement file parsed (``InvalidStatement`` names a bad line), or the lines given."""
        if not isinstance(statement, Path):
            return list(statement)
        try:
            with statement.open(encoding="utf-8-sig", newline="") as handle:
                return parse_statement(handle)
        except OSError as exc:
            raise InvalidStatement(
                f"cannot read statement {str(statement)!r}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise InvalidStatement(f"statement {str(statement)!r} is not UTF-8 text") from None

    # -- inside ----------------------------------------------------------------------

    def _pages(self, query: EventQuery, after: int, page_size: int) -> Iterator[StoredEvent]:
        while True:
            page = self._page(query, after, page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].position

    def _page(self, query: EventQuery, after: int, page_size: int) -> list[StoredEvent]:
        with self._reading() as conn:
            return [to_event(row) for row in conn.execute(query.page(after, page_size))]

    @contextmanager
    def _reading(self) -> Iterator[SqlConnection]:
        with (
            translate_errors(),
            self._engine.connect() as conn,
            conn.execution_options(**{READ_ONLY: True}).begin(),
        ):
            yield conn

    def _check_position(self, position: int) -> None:
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise InvalidRequest(
                f"a position is a whole number from 0, not {position!r}", field="position"
            )
        if position == 0:
            return
        head = self.head()
        if position > head:
            raise PositionPastHead(position, head)

    def _time_at(self, position: int) -> datetime:
        """The time of the event at ``position`` (now for the empty prefix)."""
        if position == 0:
            return datetime.now(UTC)
        (event,) = self._reader.read_all(after=position - 1, until_position=position)
        return event.occurred_at

    def _period(
        self,
        lines: Sequence[StatementLine],
        start: date | datetime | None,
        end: date | datetime | None,
    ) -> Period | None:
        own = statement_period(lines)
        if start is None and end is None:
            return own
        first = self._instant(start, "start", end_of_day=False) or (own.start if own else None)
        last = self._instant(end, "end", end_of_day=True) or (own.end if own else None)
        if first is None or last is None:
            raise InvalidRequest("the statement has no lines: give both start and end")
        if last < first:
            raise InvalidRequest("end is before start", field="end")
        return Period(first, last)

    def _instant(
        self, value: date | datetime | None, name: str, *, end_of_day: bool
    ) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return aware(value, name)
        zone = self.settings.business_zone
        return day_end(value, zone) if end_of_day else day_start(value, zone)


def _check_page_size(page_size: int) -> None:
    if not isinstance(page_size, int) or page_size < 1:
        raise InvalidRequest(f"page_size must be at least 1, not {page_size!r}", field="page_size")
