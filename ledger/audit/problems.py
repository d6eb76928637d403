"""What ``verify`` reports: the kind of damage at the first bad position, and its sentence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ProblemKind(StrEnum):
    """What is wrong at the first bad position."""

    MODIFIED = "modified"
    MISSING = "missing"
    INSERTED = "inserted"
    OUT_OF_ORDER = "out of order"
    BACKDATED = "backdated"
    TIME_TEXT = "time text"
    ILLEGAL_TRANSITION = "illegal transition"
    BAD_VERSION = "bad version"
    REWRITTEN = "rewritten"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first bad position, what is wrong there, and a sentence for the auditor."""

    position: int
    kind: ProblemKind
    detail: str


def anchor_missing(position: int, why: str) -> Problem:
    return Problem(
        position,
        ProblemKind.MISSING,
        f"the checkpointed event at position {position} is gone: {why}",
    )


def late_anchor(last_position: int, anchors: Mapping[int, str]) -> Problem | None:
    """Checkpoint positions past the end of the walk: the log lost its tail."""
    if not anchors:
        return None
    position = min(anchors)
    return Problem(
        last_position + 1,
        ProblemKind.MISSING,
        f"the log ends at position {last_position}, but the checkpoint holds "
        f"position {position}: events from position {last_position + 1} are gone",
    )


def rewritten(position: int) -> Problem:
    return Problem(
        position,
        ProblemKind.REWRITTEN,
        f"the log up to position {position} differs from the signed checkpoint: it was "
        "rewritten (with recomputed hashes) after the checkpoint was taken",
    )
