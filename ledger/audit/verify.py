"""``verify``: walk the log once and prove it is the log that was written.

For every row, in position order, it recomputes the hash from the stored fields
(the exact stored ``data`` text), checks that the row seals its predecessor
(``prev_hash``), that each job's versions run 1, 2, 3, … and that each job's
events are legal under ``ledger.lifecycle``. It stops at the first problem and
names its position and kind. The walk itself is ``ledger.audit.walker``; with
``workers > 1`` ranges of the log are walked in parallel processes
(``ledger.audit.parallel``) and the answer is the same.

Known limit, by design: an event appended after the head with a correctly
recomputed hash and a legal transition is indistinguishable from a real one;
that is what database permissions (docs/operations.md) prevent. A whole-log
rewrite with recomputed hashes is caught by a signed checkpoint (``anchors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ledger.audit import parallel
from ledger.audit.chain import RowReader
from ledger.audit.problems import Problem, ProblemKind, anchor_missing, late_anchor, rewritten
from ledger.audit.walker import Progress, RangeOutcome, walk_range
from ledger.events import GENESIS_HASH

__all__ = ["Problem", "ProblemKind", "Progress", "VerifyResult", "verify_log"]


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


def verify_log(
    engine: Engine,
    *,
    from_position: int = 1,
    anchors: Mapping[int, str] | None = None,
    on_progress: Progress | None = None,
    page_size: int = 10_000,
    workers: int = 1,
) -> VerifyResult:
    """Walk the log from ``from_position`` up to the head as it stands now.

    ``anchors`` maps positions to hashes the log must still hold there (from
    signed checkpoints). The rows before ``from_position`` are trusted (their
    last hash starts the chain) but still used to check versions and lifecycle
    of jobs that span the start. ``on_progress`` receives the last position
    checked, after each page (one process) or each range (``workers > 1``).
    ``workers`` processes recompute the hashes of consecutive ranges in
    parallel (memory stays one page and the open jobs per process); the first
    problem is the same as with one.
    """
    if from_position < 1:
        raise ValueError("from_position must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    reader = RowReader(engine)
    until = reader.head_position()
    pending = dict(anchors or {})
    early = {p: h for p, h in pending.items() if p < from_position}
    late = {p: h for p, h in pending.items() if p > until}
    inside = {p: h for p, h in pending.items() if from_position <= p <= until}
    problem, early_checked = _check_early_anchors(reader, early)
    if problem is not None:
        start = reader.last_before(from_position)
        return VerifyResult(
            checked=0,
            from_position=from_position,
            last_position=0 if start is None else start.position,
            head_hash=GENESIS_HASH if start is None else start.hash,
            problem=problem,
            anchors_checked=early_checked,
        )
    ranges = parallel.walk_ranges(
        engine,
        reader,
        from_position=from_position,
        until=until,
        anchors=inside,
        page_size=page_size,
        workers=workers,
        on_progress=on_progress,
    )
    return _merge(reader, ranges, from_position, until, inside, late, page_size, early_checked)


def _merge(
    reader: RowReader,
    ranges: Iterable[RangeOutcome],
    from_position: int,
    until: int,
    anchors: Mapping[int, str],
    late: dict[int, str],
    page_size: int,
    anchors_checked: int,
) -> VerifyResult:
    """Join range outcomes in order: the first range with a problem has the log's first problem.

    Every range is walked as a continuous walk would be if the ranges before it
    are intact, so a range's problem counts only once all earlier ranges passed.
    """
    checked = 0
    last_position, last_hash = 0, GENESIS_HASH
    problem: Problem | None = None
    for outcome in ranges:
        checked += outcome.checked
        anchors_checked += outcome.anchors_checked
        last_position, last_hash = outcome.last_position, outcome.last_hash
        problem = outcome.problem
        if problem is not None:
            break
        if outcome.leftover_anchors:
            # a checkpoint position in a gap at the end of a range is noticed by whatever
            # row comes next, maybe ranges later: walk the rest in one piece, carrying it
            leftover = outcome.leftover_anchors
            if outcome.last < until:
                later = {p: h for p, h in anchors.items() if p > outcome.last}
                rest = walk_range(
                    reader,
                    outcome.last + 1,
                    until,
                    from_position=from_position,
                    anchors={**leftover, **later},
                    page_size=page_size,
                )
                checked += rest.checked
                anchors_checked += rest.anchors_checked
                last_position, last_hash = rest.last_position, rest.last_hash
                problem, leftover = rest.problem, rest.leftover_anchors
            late = {**leftover, **late}
            break
    if problem is None:
        problem = late_anchor(last_position, late)
    return VerifyResult(
        checked=checked,
        from_position=from_position,
        last_position=last_position,
        head_hash=last_hash,
        problem=problem,
        anchors_checked=anchors_checked,
    )


def _check_early_anchors(
    reader: RowReader, anchors: Mapping[int, str]
) -> tuple[Problem | None, int]:
    """Anchors before the walk's start are checked by a direct look-up (problem, how many)."""
    checked = 0
    for position in sorted(anchors):
        row = reader.at(position)
        if row is None:
            return anchor_missing(position, "it is not in the log"), checked
        checked += 1
        if row.hash != anchors[position]:
            return rewritten(position), checked
    return None, checked
