"""A truthful ``verify``: every finding (up to a limit), re-spelled times, honest checkpoints.

Each damage below is placed far from the others; ``verify`` must list them all,
first one first, the same with one process and with ranges in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pytest
from sqlalchemy.engine import Engine

from ledger.audit.verify import AnchorStatus, ProblemKind, VerifyResult, verify_log
from ledger.store import EventStore
from tests.audit_support import Attacker, build_log, rewrite_chain

Verify = Callable[..., VerifyResult]
EVENTS = 48  # build_log(store, 12)


@pytest.fixture(params=["one process", "ranges in parallel"])
def verify(request: pytest.FixtureRequest) -> Verify:
    if request.param == "one process":
        return verify_log
    return partial(verify_log, workers=2, page_size=3)


@pytest.fixture
def attacker(store: EventStore) -> Attacker:
    build_log(store, 12)
    attacker = Attacker(store.engine)
    attacker.disable_triggers()
    return attacker


def edit(attacker: Attacker, position: int, column: str = "actor", value: str = "x") -> None:
    attacker.execute(f"UPDATE events SET {column} = :v WHERE position = :p", v=value, p=position)


def found(result: VerifyResult) -> list[tuple[int, ProblemKind]]:
    return [(problem.position, problem.kind) for problem in result.findings]


def test_every_finding_is_reported_first_one_first(verify: Verify, attacker: Attacker) -> None:
    edit(attacker, 5)
    attacker.execute("DELETE FROM events WHERE position = 20")
    edit(attacker, 33)
    result = verify(attacker.engine)
    assert not result.ok
    assert found(result) == [
        (5, ProblemKind.MODIFIED),
        (20, ProblemKind.MISSING),
        (33, ProblemKind.MODIFIED),
    ]
    assert result.problem == result.findings[0] and not result.truncated
    assert verify(attacker.engine) == verify_log(attacker.engine)


@pytest.mark.parametrize("limit", [1, 2])
def test_findings_stop_at_the_limit(verify: Verify, attacker: Attacker, limit: int) -> None:
    for position in (5, 20, 33):
        edit(attacker, position)
    result = verify(attacker.engine, max_findings=limit)
    assert found(result) == [(p, ProblemKind.MODIFIED) for p in (5, 20, 33)][:limit]
    assert result.truncated
    assert result == verify_log(attacker.engine, max_findings=limit)


def test_a_deleted_event_is_one_finding_for_its_job_too(verify: Verify, attacker: Attacker) -> None:
    """The job's next event no longer follows a version it has: reported, not a crash."""
    attacker.execute("DELETE FROM events WHERE position = 14")
    kinds = found(verify(attacker.engine))
    assert kinds[0] == (14, ProblemKind.MISSING)
    assert all(kind in {ProblemKind.MISSING, ProblemKind.BAD_VERSION} for _, kind in kinds)


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "respell",
    [
        lambda text: text.replace(" ", "T"),  # another separator
        lambda text: text[:19],  # no fraction (the instant had none)
        lambda text: text + "+00:00",  # an offset
    ],
)
def test_a_re_spelled_sqlite_time_is_found(
    verify: Verify, engine: Engine, respell: Callable[[str], str]
) -> None:
    """The same instant in another text form still seals; the text form itself is refused."""
    store = EventStore(engine, clock=lambda: datetime(2026, 1, 1, 12, tzinfo=UTC))
    build_log(store, 4)
    attacker = Attacker(engine)
    attacker.disable_triggers()
    with engine.begin() as conn:
        (stored,) = conn.exec_driver_sql("SELECT occurred_at FROM events WHERE position = 6").one()
        conn.exec_driver_sql(
            "UPDATE events SET occurred_at = ? WHERE position = 6", (respell(stored),)
        )
    result = verify(engine)
    assert found(result) == [(6, ProblemKind.TIME_TEXT)]


def test_a_rewritten_chain_never_reads_as_matched(verify: Verify, attacker: Attacker) -> None:
    rows = attacker.rows()
    anchors = {30: str(rows[29]["hash"])}
    rows[3]["actor"] = "rewritten"
    attacker.wipe()
    for row in rewrite_chain(rows):
        attacker.insert(row)
    result = verify(attacker.engine, anchors=anchors)
    assert found(result) == [(30, ProblemKind.REWRITTEN)]
    assert result.anchors == {30: AnchorStatus.DIFFERS}


def test_a_checkpoint_before_the_start_is_not_checked(verify: Verify, attacker: Attacker) -> None:
    """Its stored hash agrees, but rows up to it were edited: that is not a match."""
    rows = attacker.rows()
    anchors = {30: str(rows[29]["hash"])}
    edit(attacker, 10)  # no re-hash: the stored hash at 30 still agrees
    late = verify(attacker.engine, from_position=35, anchors=anchors)
    assert late.ok and late.anchors == {30: AnchorStatus.NOT_CHECKED}
    full = verify(attacker.engine, anchors=anchors)
    assert found(full) == [(10, ProblemKind.MODIFIED)]
    assert full.anchors == {30: AnchorStatus.MATCHED}


def test_checking_nothing_is_not_a_pass(verify: Verify, attacker: Attacker) -> None:
    result = verify(attacker.engine, from_position=2000)
    assert not result.ok and result.nothing_checked
    assert (result.checked, result.log_head) == (0, EVENTS)
