"""One error tree for the whole ledger.

Every error is a ``LedgerError``; its docstring is the default message, and the
message says what to do next. Driver errors (SQLAlchemy, psycopg, redis) are
translated into these at the boundary, so callers never see a traceback from a
library they did not call.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """The settlement ledger failed."""

    #: process exit code the CLI uses for this error
    exit_code: int = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt without ``__init__`` (whose arguments differ per error), so every
        # error crosses a process boundary whole: a forked fold's, a verify worker's
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[LedgerError], args: tuple[Any, ...], state: dict[str, Any]) -> LedgerError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidRequest(LedgerError):
    """The request is invalid; fix the named field and send it again."""

    exit_code = 2

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MalformedJson(InvalidRequest):
    """The body is not well-formed JSON (UTF-8, RFC 8259); send a JSON document."""


class IdempotencyConflict(LedgerError):
    """This idempotency key was already used for a different request; use a new key."""

    exit_code = 2

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already belongs to job {job_id} with a different "
            "request; nothing was enqueued (use a new key for a new settlement)"
        )
        self.key = key
        self.job_id = job_id


class ConcurrencyError(LedgerError):
    """Another writer changed this job first; reload its stream and decide again."""

    def __init__(self, job_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"job {job_id} is at version {actual}, not {expected}: another writer got there "
            "first; nothing was appended"
        )
        self.job_id = job_id
        self.expected = expected
        self.actual = actual


class IllegalTransition(LedgerError):
    """This event is not allowed in the job's current state."""

    def __init__(self, job_id: str, state: str | None, event_type: str) -> None:
        super().__init__(
            f"job {job_id}: event {event_type!r} is not allowed in state {state or 'none'!r}"
        )
        self.job_id = job_id
        self.state = state
        self.event_type = event_type


class JobNotFound(LedgerError):
    """No job with this id is in the ledger; check the id."""

    exit_code = 2

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} in the ledger; check the id")
        self.job_id = job_id


class NotInDeadLetterQueue(LedgerError):
    """The job is not dead-lettered, so it cannot be requeued from the DLQ."""

    exit_code = 2

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(
            f"job {job_id} is {state}, not dead-lettered; only dead-lettered jobs can be requeued"
        )
        self.job_id = job_id
        self.state = state


class WrongState(LedgerError):
    """The job's state does not allow this action; the message says which states do."""

    exit_code = 2

    def __init__(self, job_id: str, state: str, action: str, allowed: str) -> None:
        super().__init__(f"job {job_id} is {state}: {action} is allowed only {allowed}")
        self.job_id = job_id
        self.state = state


class BulkChanged(LedgerError):
    """The jobs a bulk action's filter selects are not the previewed set any more."""

    exit_code = 2

    def __init__(self, count: int, token: str) -> None:
        super().__init__(
            f"the filter now selects another set ({count} jobs, token {token}) than the "
            "preview you confirmed: nothing was done; preview again and confirm that token"
        )
        self.token = token


class JobInFlight(WrongState):
    """A worker holds an attempt of the job: it cannot be cancelled until the attempt ends."""

    def __init__(self, job_id: str, attempt: int, worker: str | None) -> None:
        LedgerError.__init__(
            self,
            f"job {job_id} is processing (attempt {attempt}, worker {worker or 'unknown'}): "
            "a job a worker holds is never cancelled; retry once the attempt has ended",
        )
        self.job_id = job_id
        self.state = "processing"
        self.attempt = attempt


class RecordConflict(LedgerError):
    """A reference or key already names another record of this job; use a new one."""

    exit_code = 2

    def __init__(self, job_id: str, kind: str, token: str, amount: int) -> None:
        super().__init__(
            f"job {job_id} already has a {kind} record {token!r} for another amount ({amount}); "
            "nothing was recorded (use a new reference or key for a new record)"
        )
        self.job_id = job_id


class TooMuchBack(InvalidRequest):
    """More money would come back than the job paid and kept; check the amount."""


class ProviderRefused(LedgerError):
    """The payment provider refused the request; its answer is in the message."""

    exit_code = 2


class StaleAttempt(LedgerError):
    """This outcome belongs to an attempt that is no longer current; it was not recorded."""

    def __init__(self, job_id: str, attempt: int, current: int | None) -> None:
        super().__init__(
            f"job {job_id}: attempt {attempt} is no longer current (current: {current}); "
            "its outcome was refused"
        )
        self.job_id = job_id
        self.attempt = attempt
        self.current = current


class DatabaseUnavailable(LedgerError):
    """The database cannot be reached; check LEDGER_DATABASE_URL and that the server is up."""


class DatabaseBusy(DatabaseUnavailable):
    """The database is busy (a lock or statement timeout, a deadlock); nothing was written, try
    again."""


class DatabaseRefused(LedgerError):
    """The database refused the operation; nothing was written (the server's log says why)."""


class SchemaNotReady(LedgerError):
    """The database has no ledger tables yet (or an older schema); run `ledger init` first."""


class QueueUnavailable(LedgerError):
    """Redis cannot be reached; check LEDGER_REDIS_URL and that the server is up."""


class QueueRefused(QueueUnavailable):
    """Redis refused a command (out of memory, a read-only replica, a script error); nothing
    changed in Redis, and the log is untouched."""


class UnsafeRedis(LedgerError):
    """Redis may evict keys; set `maxmemory-policy noeviction` before starting workers."""


class PermanentFailure(Exception):
    """Raise from a handler to dead-letter the job at once (no retry)."""


class CheckpointKeyMissing(LedgerError):
    """No checkpoint key is configured; set LEDGER_CHECKPOINT_KEY (at least 16 characters)."""

    exit_code = 2


class InvalidCheckpoint(LedgerError):
    """The checkpoint is not a valid signed checkpoint; check the file and LEDGER_CHECKPOINT_KEY."""

    exit_code = 2


class InvalidStatement(LedgerError):
    """The statement file is malformed; fix the named line and run again."""

    exit_code = 2

    def __init__(self, message: str | None = None, *, line: int | None = None) -> None:
        super().__init__(f"statement line {line}: {message}" if line is not None else message)
        self.line = line


class ProjectionBusy(LedgerError):
    """Another rebuild or replay is writing the scratch projections; retry when it is done."""


class FoldProcessLost(LedgerError):
    """The process folding the log for the projections ended without a word (killed, out of
    memory); nothing past the last committed batch was kept: run the projections again."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(
            f"the process folding the log ended (exit code {exit_code}); nothing past the "
            "last committed batch was kept: run the projections again"
        )
        self.child_exit_code = exit_code


class HandlerNotFound(LedgerError):
    """The worker's handler cannot be loaded; pass --handler as `package.module:callable`."""

    exit_code = 2


class InvalidFilter(InvalidRequest):
    """This is not a filter the log can be read by; see docs/scripts.md for the filters."""


class PositionPastHead(InvalidRequest):
    """The position is past the log's head; pass a position the log holds (0 for its start)."""

    def __init__(self, position: int, head: int) -> None:
        super().__init__(
            f"position {position} is past the log's head (position {head}); pass a position "
            f"from 0 to {head} (a stored position past the head belongs to another database)",
            field="position",
        )
        self.position = position
        self.head = head


class NaiveTime(InvalidRequest):
    """A time without a zone is ambiguous; pass an aware datetime (e.g. tzinfo=UTC)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name}: a datetime without a zone is ambiguous; pass an aware one "
            "(e.g. datetime(2026, 3, 31, tzinfo=UTC))",
            field=name,
        )
