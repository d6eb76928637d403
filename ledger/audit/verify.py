"""``verify``: walk the log once and prove it is the log that was written.

For every row, in position order, it recomputes the hash from the stored fields
(the exact stored ``data`` text), checks that the row seals its predecessor
(``prev_hash``), that its time is not earlier than its predecessor's (and, on
SQLite, stored in the one canonical text), that each job's versions run 1, 2, 3,
… and that each job's events are legal under ``ledger.lifecycle``. It reports
every problem up to ``max_findings``, first one first, each with its position
and kind. The walk itself is ``ledger.audit.walker``; with ``workers > 1``
ranges of the log are walked in parallel processes (``ledger.audit.parallel``)
and the answer is the same.

A walk that checked nothing (``from_position`` past the head, an empty log) is
not a pass. A checkpoint is reported as matched only when the walk recomputed
the chain up to it; one before ``from_position`` is "not checked".

Known limit, by design: an event appended after the head with a correctly
recomputed hash, a legal transition and the database's current time is
indistinguishable from a real one; that is what database permissions and the
provider's statement (``reconcile``) are for (docs/operations.md). A whole-log
rewrite with recomputed hashes is caught by a signed checkpoint (``anchors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.engine import Engine

from ledger.audit import parallel
from ledger.audit.chain import RowReader
from ledger.audit.problems import Problem, ProblemKind, anchor_missing, late_anchor, rewritten
from ledger.audit.walker import Finding, Progress, RangeOutcome, walk_range
from ledger.events import GENESIS_HASH

__all__ = [
    "DEFAULT_MAX_FINDINGS",
    "AnchorStatus",
    "Problem",
    "ProblemKind",
    "Progress",
    "VerifyResult",
    "verify_log",
]

#: findings reported when the caller sets no limit
DEFAULT_MAX_FINDINGS = 100


class AnchorStatus(StrEnum):
    """What became of a checkpoint's position in this walk."""

    MATCHED = "matched"
    DIFFERS = "differs"
    MISSING = "missing"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a walk: how much was checked, the chain head, and every finding."""

    checked: int
    from_position: int
    last_position: int
    head_hash: str
    findings: list[Problem] = field(default_factory=list)
    #: the walk stopped at ``max_findings``: there may be more
    truncated: bool = False
    #: checkpoint position -> what became of it
    anchors: dict[int, AnchorStatus] = field(default_factory=dict)
    #: the log's head position when the walk began
    log_head: int = 0

    @property
    def problem(self) -> Problem | None:
        """The first finding (the log's first problem), if any."""
        return self.findings[0] if self.findings else None

    @property
    def nothing_checked(self) -> bool:
        return self.checked == 0 and not self.findings

    @property
    def ok(self) -> bool:
        """No finding, and at least one event checked: checking nothing is not a pass."""
        return not self.findings and self.checked > 0


def verify_log(
    engine: Engine,
    *,
    from_position: int = 1,
    anchors: Mapping[int, str] | None = None,
    on_progress: Progress | None = None,
    page_size: int = 10_000,
    workers: int = 1,
    max_findings: int = DEFAULT_MAX_FINDINGS,
) -> VerifyResult:
    """Walk the log from ``from_position`` up to the head as it stands now.

    ``anchors`` maps positions to hashes the log must still hold there (from
    signed checkpoints). The rows before ``from_position`` are trusted (their
    last hash starts the chain) but still used to check versions and lifecycle
    of jobs that span the start; an anchor among them is not checked (a hash
    read without recomputing the chain up to it proves nothing). ``on_progress``
    receives the last position checked, after each page (one process) or each
    range (``workers > 1``). ``workers`` processes recompute the hashes of
    consecutive ranges in parallel (memory stays one page and the open jobs per
    process); the findings are the same as with one. The walk stops once it has
    ``max_findings``.
    """
    if from_position < 1:
        raise ValueError("from_position must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if max_findings < 1:
        raise ValueError("max_findings must be at least 1")
    reader = RowReader(engine)
    until = reader.head_position()
    pending = dict(anchors or {})
    early, statuses = _early_anchors(
        reader, {p: h for p, h in pending.items() if p < from_position}
    )
    late = {p: h for p, h in pending.items() if p > until}
    inside = {p: h for p, h in pending.items() if from_position <= p <= until}
    ranges = parallel.walk_ranges(
        engine,
        reader,
        from_position=from_position,
        until=until,
        anchors=inside,
        page_size=page_size,
        workers=workers,
        max_findings=max(1, max_findings - len(early)),
        on_progress=on_progress,
    )
    merged = _Merge(reader, from_position, until, inside, page_size, max_findings)
    merged.findings.extend(early)
    merged.take(ranges)
    return merged.result(late, statuses)


def _early_anchors(
    reader: RowReader, anchors: Mapping[int, str]
) -> tuple[list[Finding], dict[int, AnchorStatus]]:
    """Anchors before the walk's start, by a direct look-up of the stored hash.

    A stored hash that differs proves a rewrite, and a missing row a loss; one
    that agrees proves nothing (the rows up to it may have been edited without
    re-hashing), so the checkpoint is "not checked".
    """
    findings: list[Finding] = []
    statuses: dict[int, AnchorStatus] = {}
    for position in sorted(anchors):
        row = reader.at(position)
        if row is None:
            statuses[position] = AnchorStatus.MISSING
            problem = anchor_missing(position, "it is not in the log")
        elif row.hash != anchors[position]:
            statuses[position] = AnchorStatus.DIFFERS
            problem = rewritten(position)
        else:
            statuses[position] = AnchorStatus.NOT_CHECKED
            continue
        findings.append(Finding(problem, 0, 0, GENESIS_HASH))
    return findings, statuses


@dataclass
class _Merge:
    """Join range outcomes in order, up to ``max_findings`` findings.

    Every range is walked as a continuous walk would be at its start (a bad row
    is taken as it stands and the walk goes on, which is also what seeding a
    range from the rows before it does), so the findings of consecutive ranges
    are the findings of one walk.
    """

    reader: RowReader
    from_position: int
    until: int
    anchors: Mapping[int, str]
    page_size: int
    max_findings: int
    checked: int = 0
    last_position: int = 0
    last_hash: str = GENESIS_HASH
    findings: list[Finding] = field(default_factory=list)
    anchor_results: dict[int, bool] = field(default_factory=dict)
    leftover: dict[int, str] = field(default_factory=dict)
    truncated: bool = False

    def take(self, ranges: Iterable[RangeOutcome]) -> None:
        for outcome in ranges:
            if self._add(outcome):
                return
            if outcome.leftover_anchors:
                # a checkpoint position in a gap at the end of a range is noticed by whatever
                # row comes next, maybe ranges later: walk the rest in one piece, carrying it
                leftover = outcome.leftover_anchors
                if outcome.last < self.until:
                    later = {p: h for p, h in self.anchors.items() if p > outcome.last}
                    rest = walk_range(
                        self.reader,
                        outcome.last + 1,
                        self.until,
                        from_position=self.from_position,
                        anchors={**leftover, **later},
                        page_size=self.page_size,
                        max_findings=self.max_findings - len(self.findings),
                    )
                    if self._add(rest):
                        return
                    leftover = rest.leftover_anchors
                self.leftover = leftover
                return

    def _add(self, outcome: RangeOutcome) -> bool:
        """Add a range's outcome; True when the findings reached the limit (stop there)."""
        room = self.max_findings - len(self.findings)
        if room <= 0:
            self.truncated = True
            return True
        if len(outcome.findings) >= room:
            cut = outcome.findings[room - 1]
            self.findings.extend(outcome.findings[:room])
            self.checked += cut.checked
            self.last_position, self.last_hash = cut.last_position, cut.last_hash
            self.anchor_results.update(
                (p, ok) for p, ok in outcome.anchor_results.items() if p <= cut.last_position
            )
            self.truncated = True
            return True
        self.findings.extend(outcome.findings)
        self.checked += outcome.checked
        self.last_position, self.last_hash = outcome.last_position, outcome.last_hash
        self.anchor_results.update(outcome.anchor_results)
        return False

    def result(self, late: dict[int, str], statuses: dict[int, AnchorStatus]) -> VerifyResult:
        problems = [finding.problem for finding in self.findings]
        if not self.truncated:
            gone = late_anchor(self.last_position, {**self.leftover, **late})
            if gone is not None:
                problems.append(gone)
                self.truncated = len(problems) > self.max_findings
                problems = problems[: self.max_findings]
        for position, matched in self.anchor_results.items():
            statuses[position] = AnchorStatus.MATCHED if matched else AnchorStatus.DIFFERS
        for position in self.anchors:
            if position not in statuses:
                statuses[position] = (
                    AnchorStatus.NOT_CHECKED if self.truncated else AnchorStatus.MISSING
                )
        for position in late:
            statuses[position] = AnchorStatus.MISSING
        # a cascade may name an earlier row (a rewritten one, seen from its successor)
        ordered = sorted(problems, key=lambda problem: problem.position)
        return VerifyResult(
            checked=self.checked,
            from_position=self.from_position,
            last_position=self.last_position,
            head_hash=self.last_hash,
            findings=ordered,
            truncated=self.truncated,
            anchors=dict(sorted(statuses.items())),
            log_head=self.until,
        )
