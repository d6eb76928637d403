"""What a row that fails ``verify`` means: name the damage, say where it starts.

The walk (``ledger.audit.walker``) finds that a row breaks the chain or does
not agree with itself; these functions tell inserted from modified from moved
from missing events (trying the seal at nearby positions and following
``prev_hash``), and a changed query column from a changed request.
"""

from __future__ import annotations

import orjson

from ledger.audit.chain import RawRow, RowReader, seal
from ledger.audit.problems import Problem, ProblemKind
from ledger.events import GENESIS_HASH, OPERATOR_EVENTS, OPERATOR_STREAM, EventType

#: how far around its position a failing row is tried, to tell "moved" from "modified"
_MOVE_WINDOW = 16
_ENQUEUED = EventType.ENQUEUED.value
#: columns copied from the request on ``enqueued`` rows, outside the hash
_REQUEST_COLUMNS = ("user_id", "place_id", "mission_id", "idempotency_key")


def explain_break(
    reader: RowReader,
    row: RawRow,
    sealed: bool,
    last_position: int,
    last_hash: str,
    hash_before_last: str | None,
) -> Problem:
    """The chain breaks at ``row``: say where the damage starts and what it is."""
    sealed_at = row.position if sealed else _sealed_position(reader, row)
    if sealed_at is None:
        following = reader.after(row.position)
        if following is not None and following.prev_hash == last_hash:
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
    if hash_before_last is not None and row.prev_hash == hash_before_last:
        return Problem(
            last_position,
            ProblemKind.INSERTED,
            f"event at position {last_position} is not part of the chain: the event "
            f"at position {row.position} links past it",
        )
    if sealed_at != row.position:
        return Problem(
            row.position,
            ProblemKind.OUT_OF_ORDER,
            f"the event sealed at position {sealed_at} (job {row.job_id}, version "
            f"{row.version}) stands at position {row.position}",
        )
    return _explain_broken_link(row, last_position)


def _explain_broken_link(row: RawRow, last_position: int) -> Problem:
    """``row`` is intact where it stands but seals a predecessor that is not there."""
    if row.position > last_position + 1:
        first, last = last_position + 1, row.position - 1
        span = f"position {first}" if first == last else f"positions {first}..{last}"
        return Problem(
            first,
            ProblemKind.MISSING,
            f"event(s) at {span} are gone: the event at position {row.position} seals a "
            "predecessor that is no longer in the log",
        )
    if last_position >= 1:
        return Problem(
            last_position,
            ProblemKind.MODIFIED,
            f"event at position {last_position} was rewritten (its hash was "
            f"recomputed): the event at position {row.position} sealed a different one",
        )
    return Problem(
        row.position,
        ProblemKind.MODIFIED,
        f"event at position {row.position} does not start the chain (its prev_hash is "
        "not the genesis hash)",
    )


def _sealed_position(reader: RowReader, row: RawRow) -> int | None:
    """Where a row that fails its own position was sealed, if anywhere near or linked."""
    candidates: list[int] = []
    if row.prev_hash == GENESIS_HASH:
        candidates.append(1)
    else:
        predecessor = reader.with_hash(row.prev_hash)
        if predecessor is not None:
            candidates.append(predecessor.position + 1)
    for offset in range(1, _MOVE_WINDOW + 1):
        candidates.extend((row.position - offset, row.position + offset))
    for position in candidates:
        if position >= 1 and position != row.position and seal(row, position=position) == row.hash:
            return position
    return None


def columns_problem(row: RawRow) -> Problem | None:
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


def request_matches(
    data: str, user_id: str | None, place_id: str | None, mission_id: str | None, key: str | None
) -> bool:
    """The fast form of ``columns_problem`` on an ``enqueued`` row: True when they plainly agree."""
    try:
        request = orjson.loads(data)["request"]
        return bool(
            request.get("user_id") == user_id
            and request.get("place_id") == place_id
            and request.get("mission_id") == mission_id
            and request.get("idempotency_key") == key
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return False


def stream_problem(row: RawRow) -> Problem | None:
    """Operator events (``ledger.control``) stand in the operator stream, and only they do."""
    operator_event = row.type in OPERATOR_EVENTS
    if operator_event == (row.job_id == OPERATOR_STREAM):
        return None
    what = "an operator event" if operator_event else "a job's event"
    where = "a job's stream" if operator_event else "the operator stream"
    return Problem(
        row.position,
        ProblemKind.ILLEGAL_TRANSITION,
        f"job {row.job_id}: {row.type!r} is {what} in {where}",
    )
