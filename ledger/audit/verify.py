"""``verify``: walk the log once and prove it is the log that was written.

For every row, in position order, it recomputes the hash from the stored fields
(the exact stored ``data`` text), checks that the row seals its predecessor
(``prev_hash``), that each job's versions run 1, 2, 3, … and that each job's
events are legal under ``ledger.lifecycle``. It stops at the first problem and
names its position and kind.

Memory stays flat: rows are read a page at a time, and per-job state is only
``(version, status)`` for jobs that are still open; a completed job is dropped
(any later event of it is caught by a look-up of its last event, see
``_Walker._job_before``). Positions need not be contiguous: a gap whose two sides
still link (``prev_hash``) is not tampering.

Known limit, by design: an event appended after the head with a correctly
recomputed hash and a legal transition is indistinguishable from a real one;
that is what database permissions (docs/operations.md) prevent. A whole-log
rewrite with recomputed hashes is caught by a signed checkpoint (``anchors``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import orjson
from sqlalchemy.engine import Engine

from ledger.audit.chain import RawRow, RowReader, seal
from ledger.events import GENESIS_HASH, EventType
from ledger.lifecycle import TERMINAL, TRANSITIONS, JobStatus

#: how far around its position a failing row is tried, to tell "moved" from "modified"
_MOVE_WINDOW = 16

#: the lifecycle's transition table with plain-string keys (enum hashing is slow per row)
_NEXT: Mapping[tuple[str | None, str], str] = {
    (None if before is None else before.value, event_type.value): after.value
    for (before, event_type), after in TRANSITIONS.items()
}
_TERMINAL = frozenset(status.value for status in TERMINAL)
_ENQUEUED = EventType.ENQUEUED.value

#: the state after each event type (the lifecycle's targets depend on the event alone)
_STATUS_AFTER: Mapping[str, JobStatus] = {
    event_type.value: status for (_, event_type), status in TRANSITIONS.items()
}

#: columns copied from the request on ``enqueued`` rows, outside the hash
_REQUEST_COLUMNS = ("user_id", "place_id", "mission_id", "idempotency_key")


class ProblemKind(StrEnum):
    """What is wrong at the first bad position."""

    MODIFIED = "modified"
    MISSING = "missing"
    INSERTED = "inserted"
    OUT_OF_ORDER = "out of order"
    ILLEGAL_TRANSITION = "illegal transition"
    BAD_VERSION = "bad version"
    REWRITTEN = "rewritten"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first bad position, what is wrong there, and a sentence for the auditor."""

    position: int
    kind: ProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a walk: how much was checked, the chain head, and the first problem."""

    checked: int
    from_position: int
    last_position: int
    head_hash: str
    problem: Problem | None = None
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


Progress = Callable[[int], None]


def verify_log(
    engine: Engine,
    *,
    from_position: int = 1,
    anchors: Mapping[int, str] | None = None,
    on_progress: Progress | None = None,
    page_size: int = 2000,
) -> VerifyResult:
    """Walk the log from ``from_position`` up to the head as it stands now.

    ``anchors`` maps positions to hashes the log must still hold there (from
    signed checkpoints). The rows before ``from_position`` are trusted (their
    last hash starts the chain) but still used to check versions and lifecycle
    of jobs that span the start. ``on_progress`` receives the last position read
    after each page.
    """
    if from_position < 1:
        raise ValueError("from_position must be at least 1")
    reader = RowReader(engine)
    until = reader.head_position()
    walker = _Walker(reader, from_position, dict(anchors or {}))
    problem = walker.check_early_anchors()
    if problem is None:
        problem = _walk(walker, reader, from_position, until, on_progress, page_size)
    if problem is None:
        problem = walker.check_late_anchors()
    return VerifyResult(
        checked=walker.checked,
        from_position=from_position,
        last_position=walker.last_position,
        head_hash=walker.last_hash,
        problem=problem,
        anchors_checked=walker.anchors_checked,
    )


def _walk(
    walker: _Walker,
    reader: RowReader,
    from_position: int,
    until: int,
    on_progress: Progress | None,
    page_size: int,
) -> Problem | None:
    for page in reader.pages(from_position - 1, until, page_size):
        for row in page:
            problem = walker.check(row)
            if problem is not None:
                return problem
        if on_progress is not None:
            on_progress(page[-1].position)
    return None


@dataclass
class _Walker:
    reader: RowReader
    from_position: int
    anchors: dict[int, str]
    checked: int = 0
    anchors_checked: int = 0
    last_position: int = 0
    last_hash: str = GENESIS_HASH
    #: hash of the row before the last good one (None: not known)
    hash_before_last: str | None = None
    #: open jobs only: job id -> (version, status value)
    jobs: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: whether ``last_position`` is a row this walk checked (not the trusted start)
    walked_any: bool = False

    def __post_init__(self) -> None:
        if self.from_position > 1:
            start = self.reader.last_before(self.from_position)
            if start is not None:
                self.last_position, self.last_hash = start.position, start.hash

    # -- per row -------------------------------------------------------------

    def check(self, row: RawRow) -> Problem | None:
        problem = self._chain(row) or self._columns(row) or self._anchor(row) or self._job(row)
        if problem is None:
            self.hash_before_last = self.last_hash
            self.last_position, self.last_hash = row.position, row.hash
            self.checked += 1
            self.walked_any = True
        return problem

    def _chain(self, row: RawRow) -> Problem | None:
        if row.position <= self.last_position:
            return Problem(
                row.position, ProblemKind.INSERTED, f"a second event at position {row.position}"
            )
        sealed = seal(row) == row.hash
        if sealed and row.prev_hash == self.last_hash:
            return None
        return self._explain_break(row, sealed)

    def _explain_break(self, row: RawRow, sealed: bool) -> Problem:
        """The chain breaks at ``row``: say where the damage starts and what it is."""
        sealed_at = row.position if sealed else self._sealed_position(row)
        if sealed_at is None:
            following = self.reader.after(row.position)
            if following is not None and following.prev_hash == self.last_hash:
                return Problem(
                    row.position,
                    ProblemKind.INSERTED,
                    f"event at position {row.position} (job {row.job_id}) seals nothing, "
                    f"and the next event links past it",
                )
            return Problem(
                row.position,
                ProblemKind.MODIFIED,
                f"event at position {row.position} (job {row.job_id}, version {row.version}) "
                "no longer matches its hash: a stored field was changed",
            )
        if self.walked_any and row.prev_hash == self.hash_before_last:
            return Problem(
                self.last_position,
                ProblemKind.INSERTED,
                f"event at position {self.last_position} is not part of the chain: the event "
                f"at position {row.position} links past it",
            )
        if sealed_at != row.position:
            return Problem(
                row.position,
                ProblemKind.OUT_OF_ORDER,
                f"the event sealed at position {sealed_at} (job {row.job_id}, version "
                f"{row.version}) stands at position {row.position}",
            )
        return self._explain_broken_link(row)

    def _explain_broken_link(self, row: RawRow) -> Problem:
        """``row`` is intact where it stands but seals a predecessor that is not there."""
        if row.position > self.last_position + 1:
            first, last = self.last_position + 1, row.position - 1
            span = f"position {first}" if first == last else f"positions {first}..{last}"
            return Problem(
                first,
                ProblemKind.MISSING,
                f"event(s) at {span} are gone: the event at position {row.position} seals a "
                "predecessor that is no longer in the log",
            )
        if self.last_position >= 1:
            return Problem(
                self.last_position,
                ProblemKind.MODIFIED,
                f"event at position {self.last_position} was rewritten (its hash was "
                f"recomputed): the event at position {row.position} sealed a different one",
            )
        return Problem(
            row.position,
            ProblemKind.MODIFIED,
            f"event at position {row.position} does not start the chain (its prev_hash is "
            "not the genesis hash)",
        )

    def _sealed_position(self, row: RawRow) -> int | None:
        """Where a row that fails its own position was sealed, if anywhere near or linked."""
        candidates: list[int] = []
        if row.prev_hash == GENESIS_HASH:
            candidates.append(1)
        else:
            predecessor = self.reader.with_hash(row.prev_hash)
            if predecessor is not None:
                candidates.append(predecessor.position + 1)
        for offset in range(1, _MOVE_WINDOW + 1):
            candidates.extend((row.position - offset, row.position + offset))
        for position in candidates:
            if (
                position >= 1
                and position != row.position
                and seal(row, position=position) == row.hash
            ):
                return position
        return None

    def _columns(self, row: RawRow) -> Problem | None:
        """The query columns outside the hash must agree with the sealed request."""
        stored = (row.user_id, row.place_id, row.mission_id, row.idempotency_key)
        if row.type != _ENQUEUED:
            expected: tuple[object, ...] = (None, None, None, None)
        else:
            try:
                request = orjson.loads(row.data)["request"]
                expected = tuple(request.get(name) for name in _REQUEST_COLUMNS)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                return Problem(row.position, ProblemKind.MODIFIED, "enqueued event has no request")
        if stored == expected:
            return None
        name, value, sealed = next(
            (n, v, e) for n, v, e in zip(_REQUEST_COLUMNS, stored, expected, strict=True) if v != e
        )
        return Problem(
            row.position,
            ProblemKind.MODIFIED,
            f"column {name} of the event at position {row.position} was changed "
            f"({value!r}, the sealed event says {sealed!r})",
        )

    def _anchor(self, row: RawRow) -> Problem | None:
        if not self.anchors:
            return None
        passed = [p for p in self.anchors if self.last_position < p < row.position]
        if passed:
            return self._anchor_missing(
                min(passed), f"the log skips from position {self.last_position} to {row.position}"
            )
        expected = self.anchors.pop(row.position, None)
        if expected is None:
            return None
        self.anchors_checked += 1
        if expected != row.hash:
            return _rewritten(row.position)
        return None

    def _job(self, row: RawRow) -> Problem | None:
        before = self.jobs.get(row.job_id)
        if before is None:
            found = self._job_before(row)
            if isinstance(found, Problem):
                return found
            before = found
        version, status = before if before is not None else (0, None)
        if row.version != version + 1:
            return Problem(
                row.position,
                ProblemKind.BAD_VERSION,
                f"job {row.job_id}: version {row.version} follows version {version}",
            )
        after = _NEXT.get((status, row.type))
        if after is None:
            return Problem(
                row.position,
                ProblemKind.ILLEGAL_TRANSITION,
                f"job {row.job_id}: {row.type!r} is not allowed in state {(status or 'none')!r}",
            )
        if after in _TERMINAL:
            self.jobs.pop(row.job_id, None)
        else:
            self.jobs[row.job_id] = (row.version, after)
        return None

    def _job_before(self, row: RawRow) -> tuple[int, str] | Problem | None:
        """State of a job not held in memory: new, completed earlier, or begun before the walk."""
        if row.version == 1:
            return None
        previous = self.reader.latest_of_job(row.job_id, row.position)
        if previous is None:
            return Problem(
                row.position,
                ProblemKind.BAD_VERSION,
                f"job {row.job_id}: version {row.version} has no earlier event",
            )
        status = _STATUS_AFTER.get(previous.type)
        if status is None:
            return Problem(previous.position, ProblemKind.ILLEGAL_TRANSITION, "unknown event type")
        return previous.version, status.value

    # -- checkpoints -----------------------------------------------------------

    def check_early_anchors(self) -> Problem | None:
        """Anchors before the walk's start are checked by a direct look-up."""
        for position in sorted(p for p in self.anchors if p < self.from_position):
            expected = self.anchors.pop(position)
            row = self.reader.at(position)
            if row is None:
                return self._anchor_missing(position, "it is not in the log")
            self.anchors_checked += 1
            if row.hash != expected:
                return _rewritten(position)
        return None

    def check_late_anchors(self) -> Problem | None:
        if not self.anchors:
            return None
        position = min(self.anchors)
        return Problem(
            self.last_position + 1,
            ProblemKind.MISSING,
            f"the log ends at position {self.last_position}, but the checkpoint holds "
            f"position {position}: events from position {self.last_position + 1} are gone",
        )

    def _anchor_missing(self, position: int, why: str) -> Problem:
        return Problem(
            position,
            ProblemKind.MISSING,
            f"the checkpointed event at position {position} is gone: {why}",
        )


def _rewritten(position: int) -> Problem:
    return Problem(
        position,
        ProblemKind.REWRITTEN,
        f"the log up to position {position} differs from the signed checkpoint: it was "
        "rewritten (with recomputed hashes) after the checkpoint was taken",
    )
