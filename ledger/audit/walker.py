"""The walk behind ``verify``: check a range of positions, row by row, and name the first problem.

For every row, in position order, it recomputes the hash from the stored fields
(the exact stored ``data`` text), checks that the row seals its predecessor
(``prev_hash``), that the query columns agree with the sealed request, that each
job's versions run 1, 2, 3, … and that each job's events are legal under
``ledger.lifecycle``. It reports every problem (up to ``max_findings``), each with
its position and kind: after a bad row the walk takes the row as it stands and goes on
(``Walker.check``), which is also the state a walk seeded just past it would have.

A walk may start anywhere (``seeded``): it takes the rows just before its start
as they stand and asks the database for the last event of a job it has not seen
(``RowReader.latest_of_job``). That is exactly the state a walk from further back
would hold *if the rows before are intact*, which is what lets ``verify`` check
ranges in parallel and still report the same first problem (see ``parallel``).

Memory stays flat: rows are read a page at a time, and per-job state is only
``(version, status)`` for jobs that are still open; a completed job is dropped
(any later event of it is caught by a look-up of its last event, see
``Walker._job_before``). Positions need not be contiguous: a gap whose two sides
still link (``prev_hash``) is not tampering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ledger.audit.chain import RawRow, RawValues, RowReader, seal
from ledger.audit.damage import columns_problem, explain_break, request_matches, stream_problem
from ledger.audit.problems import Problem, ProblemKind, anchor_missing, rewritten
from ledger.events import GENESIS_HASH, OPERATOR_EVENTS, EventType, sealed_hash
from ledger.lifecycle import TERMINAL, TRANSITIONS

#: the "state" of the operator stream (``ledger.control``): any operator event may follow
#: any other, from the first on; no job event may stand in it, nor it in a job's stream
_OPERATOR = "operator stream"

#: the lifecycle's transition table with plain-string keys (enum hashing is slow per row),
#: and the operator stream's events
_NEXT: Mapping[tuple[str | None, str], str] = {
    **{
        (None if before is None else before.value, event_type.value): after.value
        for (before, event_type), after in TRANSITIONS.items()
    },
    **{(before, kind): _OPERATOR for kind in OPERATOR_EVENTS for before in (None, _OPERATOR)},
}
#: ``_NEXT`` for the fast path: the operator stream's first event goes through ``check``,
#: which sees that it stands in the operator stream; after it the stream's state is held
_FAST_NEXT = {
    key: after for key, after in _NEXT.items() if key[0] is not None or after != _OPERATOR
}
_TERMINAL = frozenset(status.value for status in TERMINAL)
_ENQUEUED = EventType.ENQUEUED.value

#: the state after each event type (the lifecycle's targets depend on the event alone)
_STATUS_AFTER: Mapping[str, str] = {
    **{event_type.value: status.value for (_, event_type), status in TRANSITIONS.items()},
    **{kind: _OPERATOR for kind in OPERATOR_EVENTS},
}

#: "no anchor ahead" for the fast path's bound
_NO_ANCHOR = float("inf")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RangeOutcome:
    """What a walk over ``first..last`` found (picklable: it crosses process boundaries).

    ``last_position``/``last_hash`` are the chain head after the walk (the row
    before ``first`` if the range held none). ``leftover_anchors`` are
    checkpoint positions in the range the walk never reached a row past.
    """

    first: int
    last: int
    checked: int
    last_position: int
    last_hash: str
    leftover_anchors: dict[int, str]
    findings: list[Finding]
    #: checkpoint positions reached: position -> whether the hash there matched
    anchor_results: dict[int, bool]

    @property
    def problem(self) -> Problem | None:
        return self.findings[0].problem if self.findings else None


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem, and how far the walk had got when it found it (to cut a result there)."""

    problem: Problem
    checked: int
    last_position: int
    last_hash: str


def walk_range(
    reader: RowReader,
    first: int,
    last: int,
    *,
    from_position: int,
    anchors: Mapping[int, str],
    page_size: int,
    max_findings: int,
    on_progress: Progress | None = None,
) -> RangeOutcome:
    """Check the rows ``first..last`` (inclusive); rows before ``from_position`` are trusted.

    Stops once ``max_findings`` problems are found.
    """
    walker = Walker.seeded(reader, first, from_position, dict(anchors))
    walker.max_findings = max_findings
    for page in reader.pages(first - 1, last, page_size):
        if walker.check_page(page):
            break
        if on_progress is not None:
            on_progress(page[-1][0])
    return RangeOutcome(
        first=first,
        last=last,
        checked=walker.checked,
        last_position=walker.last_position,
        last_hash=walker.last_hash,
        leftover_anchors=walker.anchors,
        findings=walker.findings,
        anchor_results=walker.anchor_results,
    )


@dataclass
class Walker:
    reader: RowReader
    anchors: dict[int, str]
    checked: int = 0
    last_position: int = 0
    last_hash: str = GENESIS_HASH
    #: time text of the last good row (None: no row yet, or its time is unreadable)
    last_time: str | None = None
    #: hash of the row before the last good one (None: not known)
    hash_before_last: str | None = None
    #: open jobs only: job id -> (version, status value)
    jobs: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: whether ``last_position`` is a row this walk (or an earlier range of it) checked
    walked_any: bool = False
    findings: list[Finding] = field(default_factory=list)
    max_findings: int = 1
    #: checkpoint positions reached: position -> whether the hash there matched
    anchor_results: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def seeded(
        cls, reader: RowReader, first: int, from_position: int, anchors: dict[int, str]
    ) -> Walker:
        """A walker about to check ``first``, in the state a walk from ``from_position`` has there.

        The row just before ``first`` is the chain head; if it is itself past
        ``from_position`` it counts as walked (and its predecessor's hash is kept
        to tell an inserted row from a modified one, as a continuous walk would).
        """
        walker = cls(reader, anchors)
        start = reader.last_before(first)
        if start is None:
            return walker
        walker.last_position, walker.last_hash = start.position, start.hash
        # a row that fails its own seal says nothing trustworthy about time (as in ``check``)
        walker.last_time = start.occurred_at if seal(start) == start.hash else None
        if start.position >= from_position:
            walker.walked_any = True
            before = reader.last_before(start.position)
            walker.hash_before_last = GENESIS_HASH if before is None else before.hash
        return walker

    # -- per page: the common case inline -------------------------------------------

    def check_page(self, page: list[RawValues]) -> bool:
        """Check a page of rows; True once ``max_findings`` problems are found (stop).

        Each row that is not plainly fine goes through ``check``.

        Plainly fine: it follows the last row, seals its predecessor, its hash
        recomputes, its query columns match, no checkpoint is due, and its job's
        state is in memory (or it is a version 1) with a legal next step. The
        fast path only ever accepts; everything it does not accept is re-checked
        by ``check``, which also explains what is wrong.
        """
        jobs, nxt, terminal, rehash = self.jobs, _FAST_NEXT, _TERMINAL, sealed_hash
        enqueued = _ENQUEUED
        next_anchor = min(self.anchors, default=_NO_ANCHOR)
        last_position, last_hash, hash_before_last, last_time = (
            self.last_position,
            self.last_hash,
            self.hash_before_last,
            self.last_time or "",
        )
        checked = self.checked
        for values in page:
            (
                position,
                job_id,
                version,
                kind,
                data,
                time_text,
                actor,
                key,
                user_id,
                place_id,
                mission_id,
                prev_hash,
                digest,
            ) = values
            after: str | None = None
            if (
                last_position < position < next_anchor
                and prev_hash == last_hash
                and time_text is not None
                and time_text >= last_time
                and len(time_text) == len(last_time)  # same year width: text order is time order
                and digest
                == rehash(prev_hash, position, job_id, version, kind, data, time_text, actor, key)
                and (
                    user_id is None and place_id is None and mission_id is None and key is None
                    if kind != enqueued
                    else request_matches(data, user_id, place_id, mission_id, key)
                )
            ):
                state = jobs.get(job_id)
                if state is None:
                    after = nxt.get((None, kind)) if version == 1 else None
                elif version == state[0] + 1:
                    after = nxt.get((state[1], kind))
            if after is not None:
                if after in terminal:
                    jobs.pop(job_id, None)
                else:
                    jobs[job_id] = (version, after)
                hash_before_last, last_position, last_hash = last_hash, position, digest
                last_time = time_text
                checked += 1
                continue
            # not plainly fine: hand the state over, let the full check decide and explain
            if checked != self.checked:
                self.walked_any = True
            self.last_position, self.last_hash = last_position, last_hash
            self.hash_before_last, self.checked = hash_before_last, checked
            self.last_time = last_time or None
            if self.check(self.reader.row(values)) and len(self.findings) >= self.max_findings:
                return True
            last_position, last_hash = self.last_position, self.last_hash
            hash_before_last, checked = self.hash_before_last, self.checked
            last_time = self.last_time or ""
            next_anchor = min(self.anchors, default=_NO_ANCHOR)
        if checked != self.checked:
            self.walked_any = True
        self.last_position, self.last_hash = last_position, last_hash
        self.hash_before_last, self.checked = hash_before_last, checked
        self.last_time = last_time or None
        return False

    # -- per row -------------------------------------------------------------

    def check(self, row: RawRow) -> bool:
        """Check one row and take it as the new head, good or bad; True if it had a problem.

        At most one problem per row is reported (the first the checks find), and
        a checkpoint that differs; the job's state moves on to the row's either
        way, so the next event of the job is judged against this one.
        """
        if row.position <= self.last_position:
            return self._found(
                Problem(
                    row.position,
                    ProblemKind.INSERTED,
                    f"a second event at position {row.position}",
                )
            )
        sealed = seal(row) == row.hash
        problem = (
            self._chain(row, sealed)
            or self._time_form(row)
            or columns_problem(row)
            or (self._time(row) if sealed else None)
        )
        anchor = self._anchor(row)
        job = self._job(row)
        self.hash_before_last = self.last_hash
        self.last_position, self.last_hash = row.position, row.hash
        # a row that fails its own seal says nothing trustworthy about time
        self.last_time = row.occurred_at if sealed else None
        self.checked += 1
        self.walked_any = True
        found = False
        for item in (problem or job, anchor):
            if item is not None:
                found = self._found(item) or found
        return found

    def _found(self, problem: Problem) -> bool:
        self.findings.append(Finding(problem, self.checked, self.last_position, self.last_hash))
        return True

    def _chain(self, row: RawRow, sealed: bool) -> Problem | None:
        if sealed and row.prev_hash == self.last_hash:
            return None
        return self._explain_break(row, sealed)

    def _explain_break(self, row: RawRow, sealed: bool) -> Problem:
        """The chain breaks at ``row``: say where the damage starts and what it is."""
        before = self.hash_before_last if self.walked_any else None
        return explain_break(self.reader, row, sealed, self.last_position, self.last_hash, before)

    def _time_form(self, row: RawRow) -> Problem | None:
        """SQLite keeps time as text: only the one canonical form is the time that was sealed."""
        if row.time_form_ok:
            return None
        return Problem(
            row.position,
            ProblemKind.TIME_TEXT,
            f"event at position {row.position} (job {row.job_id}) stores its time as "
            f"{row.stored_time!r}, not in the canonical form: the same instant re-spelled "
            "changes what time comparisons (as-of views, --from/--to) find",
        )

    def _time(self, row: RawRow) -> Problem | None:
        """Time never runs backwards along positions (the prefix "as of T" depends on it)."""
        if row.occurred_at is None or self.last_time is None:
            return None
        if time_order(row.occurred_at) >= time_order(self.last_time):
            return None
        return Problem(
            row.position,
            ProblemKind.BACKDATED,
            f"event at position {row.position} (job {row.job_id}) is dated {row.occurred_at}, "
            f"earlier than the event before it ({self.last_time}): it was backdated",
        )

    def _anchor(self, row: RawRow) -> Problem | None:
        if not self.anchors:
            return None
        passed = [p for p in self.anchors if self.last_position < p < row.position]
        if passed:
            for position in passed:
                del self.anchors[position]
            return anchor_missing(
                min(passed), f"the log skips from position {self.last_position} to {row.position}"
            )
        expected = self.anchors.pop(row.position, None)
        if expected is None:
            return None
        self.anchor_results[row.position] = expected == row.hash
        if expected != row.hash:
            return rewritten(row.position)
        return None

    def _job(self, row: RawRow) -> Problem | None:
        """Check the job's version and transition, then move the job on to this row."""
        problem = stream_problem(row) or self._job_step(row)
        status = _STATUS_AFTER.get(row.type)
        if status is None or status in _TERMINAL:
            self.jobs.pop(row.job_id, None)
        else:
            self.jobs[row.job_id] = (row.version, status)
        return problem

    def _job_step(self, row: RawRow) -> Problem | None:
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
        if _NEXT.get((status, row.type)) is None:
            return Problem(
                row.position,
                ProblemKind.ILLEGAL_TRANSITION,
                f"job {row.job_id}: {row.type!r} is not allowed in state {(status or 'none')!r}",
            )
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
            return Problem(
                row.position,
                ProblemKind.ILLEGAL_TRANSITION,
                f"job {row.job_id}: its event at position {previous.position} has an "
                f"unknown type {previous.type!r}",
            )
        return previous.version, status


def time_order(text: str) -> tuple[int, str]:
    """Sort key of a ``format_time`` text: its year is unpadded, so longer years are later."""
    return text.index("-"), text
