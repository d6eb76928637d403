"""``verify`` against an attacker with the owner's rights, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.audit.verify import ProblemKind, VerifyResult, verify_log
from ledger.db import create_engine
from ledger.errors import ConcurrencyError, SchemaNotReady
from ledger.events import GENESIS_HASH, EventType, NewEvent
from ledger.schema import events
from ledger.store import EventStore, StreamAppend
from tests.audit_support import Attacker, build_log, reseal, rewrite_chain

JOBS = 6  # 25 events: see build_log
EVENTS = 25


Verify = Callable[..., VerifyResult]


@pytest.fixture(params=["one process", "ranges in parallel"])
def verify(request: pytest.FixtureRequest) -> Verify:
    """``verify_log`` walking in one piece, or in 3-position ranges over 2 processes.

    Tiny ranges put a range boundary next to every kind of damage below: the
    parallel walk must name the same first problem as the single one.
    """
    if request.param == "one process":
        return verify_log
    return partial(verify_log, workers=2, page_size=3)


@pytest.fixture
def log(store: EventStore) -> list[str]:
    return build_log(store, JOBS)


@pytest.fixture
def attacker(engine: Engine, log: list[str]) -> Attacker:
    del log
    attacker = Attacker(engine)
    attacker.disable_triggers()
    return attacker


def problem_at(
    engine: Engine, verify: Verify = verify_log, **options: Any
) -> tuple[int, ProblemKind]:
    result = verify(engine, **options)
    assert result.problem is not None, "tampering went undetected"
    return result.problem.position, result.problem.kind


def test_an_intact_log_verifies(
    verify: Verify, engine: Engine, store: EventStore, log: list[str]
) -> None:
    result = verify(engine, page_size=4)
    assert result.ok, result.problem
    assert result.checked == EVENTS
    assert (result.last_position, result.head_hash) == (EVENTS, store.head().hash)


def test_an_empty_log_checks_nothing_which_is_not_a_pass(verify: Verify, engine: Engine) -> None:
    result = verify(engine)
    assert not result.ok and result.nothing_checked and result.findings == []
    assert (result.checked, result.last_position, result.head_hash) == (0, 0, GENESIS_HASH)


def test_starting_past_the_head_checks_nothing_which_is_not_a_pass(
    verify: Verify, engine: Engine, log: list[str]
) -> None:
    result = verify(engine, from_position=EVENTS + 100)
    assert not result.ok and result.nothing_checked
    assert (result.checked, result.log_head) == (0, EVENTS)


def test_progress_reaches_the_head(engine: Engine, log: list[str]) -> None:
    seen: list[int] = []
    verify_log(engine, page_size=7, on_progress=seen.append)
    assert seen == [7, 14, 21, 25]


def test_updated_amount_is_modified(verify: Verify, attacker: Attacker, engine: Engine) -> None:
    row = attacker.rows()[2]
    assert row["type"] == "enqueued"
    data = row["data"].replace('"amount":1002', '"amount":9991002')
    assert data != row["data"]
    attacker.execute("UPDATE events SET data = :data WHERE position = 3", data=data)
    assert problem_at(engine, verify) == (3, ProblemKind.MODIFIED)


def test_updated_actor_is_modified(verify: Verify, attacker: Attacker, engine: Engine) -> None:
    attacker.execute("UPDATE events SET actor = 'someone-else' WHERE position = 11")
    assert problem_at(engine, verify) == (11, ProblemKind.MODIFIED)


def test_updated_query_column_is_modified(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    """user_id is outside the hash but must agree with the sealed request."""
    attacker.execute("UPDATE events SET user_id = 'user-x' WHERE position = 4")
    assert problem_at(engine, verify) == (4, ProblemKind.MODIFIED)


def test_amount_rewritten_with_a_recomputed_hash_is_caught_by_the_next_link(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    row = attacker.rows()[4]
    forged = reseal(
        {**row, "data": row["data"].replace('"amount":1004', '"amount":1')}, row["prev_hash"]
    )
    attacker.execute(
        "UPDATE events SET data = :data, hash = :hash WHERE position = 5",
        data=forged["data"],
        hash=forged["hash"],
    )
    assert problem_at(engine, verify) == (5, ProblemKind.MODIFIED)


@pytest.mark.parametrize(("first", "last"), [(12, 12), (12, 14)])
def test_deleted_middle_events_are_missing(
    verify: Verify, attacker: Attacker, engine: Engine, first: int, last: int
) -> None:
    attacker.execute("DELETE FROM events WHERE position BETWEEN :a AND :b", a=first, b=last)
    assert problem_at(engine, verify) == (first, ProblemKind.MISSING)


def test_deleted_first_event_is_missing(verify: Verify, attacker: Attacker, engine: Engine) -> None:
    attacker.execute("DELETE FROM events WHERE position = 1")
    assert problem_at(engine, verify) == (1, ProblemKind.MISSING)


@pytest.mark.parametrize(("a", "b"), [(5, 6), (4, 20)])
def test_swapped_events_are_out_of_order(
    verify: Verify, attacker: Attacker, engine: Engine, a: int, b: int
) -> None:
    attacker.execute("UPDATE events SET position = -1 WHERE position = :a", a=a)
    attacker.execute("UPDATE events SET position = :a WHERE position = :b", a=a, b=b)
    attacker.execute("UPDATE events SET position = :b WHERE position = -1", b=b)
    assert problem_at(engine, verify) == (a, ProblemKind.OUT_OF_ORDER)


def test_forged_completion_of_a_completed_job_is_illegal(
    verify: Verify, attacker: Attacker, engine: Engine, store: EventStore, log: list[str]
) -> None:
    """Sealed correctly onto the head: only the lifecycle can tell (job 0 completed at v3)."""
    head = store.head()
    last = attacker.rows()[-1]
    forged = {
        **last,
        "position": head.position + 1,
        "job_id": log[0],
        "version": 4,
        "type": "completed",
        "data": '{"attempt":1}',
        "actor": "forger",
        "idempotency_key": None,
    }
    attacker.insert(reseal(forged, head.hash))
    assert problem_at(engine, verify) == (EVENTS + 1, ProblemKind.ILLEGAL_TRANSITION)


def test_forged_event_skipping_a_version_is_bad_version(
    verify: Verify, attacker: Attacker, engine: Engine, store: EventStore, log: list[str]
) -> None:
    """Job 3 is processing at version 2; a completion claiming version 4 skips one."""
    head = store.head()
    last = attacker.rows()[-1]
    forged = {
        **last,
        "position": head.position + 1,
        "job_id": log[3],
        "version": 4,
        "type": "completed",
        "data": '{"attempt":1}',
        "idempotency_key": None,
    }
    attacker.insert(reseal(forged, head.hash))
    assert problem_at(engine, verify) == (EVENTS + 1, ProblemKind.BAD_VERSION)


def gapped_log(attacker: Attacker) -> list[dict[str, object]]:
    """The log rewritten with a gap at positions 11..14, links intact (as a sequence leaves)."""
    rows = attacker.rows()
    for row in rows[10:]:
        row["position"] += 4
    rows = rewrite_chain(rows)
    attacker.wipe()
    for row in rows:
        attacker.insert(row)
    return rows


def test_a_gap_in_positions_is_not_tampering(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    gapped_log(attacker)
    result = verify(engine)
    assert result.ok, result.problem
    assert (result.checked, result.last_position) == (EVENTS, EVENTS + 4)


def test_forged_event_sealed_into_a_gap_is_inserted(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    rows = gapped_log(attacker)
    before = rows[9]  # position 10
    forged = {
        **rows[0],
        "position": 12,
        "job_id": "f" * 36,
        "data": str(rows[0]["data"]).replace('"key-0"', '"key-forged"'),
        "idempotency_key": "key-forged",
        "occurred_at": before["occurred_at"],  # not backdated: only inserted
    }
    attacker.insert(reseal(forged, str(before["hash"])))
    assert problem_at(engine, verify) == (12, ProblemKind.INSERTED)


def test_forged_event_with_a_made_up_hash_is_inserted(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    rows = gapped_log(attacker)
    forged = {**rows[10], "position": 12, "job_id": "f" * 36, "prev_hash": rows[9]["hash"]}
    forged["hash"] = "e" * 64
    attacker.insert(forged)
    assert problem_at(engine, verify) == (12, ProblemKind.INSERTED)


def test_whole_chain_rewrite_passes_the_chain_alone(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    """Why checkpoints exist: recomputed hashes make a consistent forgery."""
    rows = attacker.rows()
    forged = rows[2]["data"].replace('"amount":1002', '"amount":1')
    assert forged != rows[2]["data"]
    rows[2]["data"] = forged
    attacker.wipe()
    for row in rewrite_chain(rows):
        attacker.insert(row)
    assert verify(engine).ok


def test_rolled_back_appends_leave_no_false_alarm(
    verify: Verify, engine: Engine, store: EventStore, log: list[str]
) -> None:
    attempt = NewEvent(EventType.ATTEMPTED, {"attempt": 9}, "w")
    with pytest.raises(ConcurrencyError):
        store.append(log[3], 1, [attempt])  # stale version: refused, nothing written
    with pytest.raises(RuntimeError), store._writing() as (conn, head):
        store._insert(conn, head, [StreamAppend(log[3], 2, [attempt])])
        raise RuntimeError("crash after the insert, before the commit")
    with pytest.raises(ConcurrencyError):
        store.append_many([StreamAppend(log[2], 5, [attempt]), StreamAppend(log[3], 7, [attempt])])
    store.append(log[3], 2, [NewEvent(EventType.COMPLETED, {"attempt": 1}, "w")])
    result = verify(engine)
    assert result.ok, result.problem
    assert (result.checked, result.last_position) == (EVENTS + 1, EVENTS + 1)


def test_from_position_trusts_the_prefix_and_checks_the_rest(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    result = verify(engine, from_position=13)
    assert result.ok, result.problem
    assert result.checked == EVENTS - 12
    attacker.execute("UPDATE events SET actor = 'x' WHERE position = 3")
    assert verify(engine, from_position=13).ok  # before the start: trusted
    attacker.execute("UPDATE events SET actor = 'x' WHERE position = 20")
    problem = verify(engine, from_position=13).problem
    assert problem is not None and problem.position == 20


def test_from_position_checks_versions_of_jobs_begun_before_it(
    verify: Verify, attacker: Attacker, engine: Engine, store: EventStore, log: list[str]
) -> None:
    """Job 3 (processing at v2, begun before position 13) gets a second 'attempted'."""
    head = store.head()
    last = attacker.rows()[-1]
    forged = {
        **last,
        "position": head.position + 1,
        "job_id": log[3],
        "version": 3,
        "type": "attempted",
        "data": '{"attempt":2}',
        "idempotency_key": None,
    }
    attacker.insert(reseal(forged, head.hash))
    problem = verify(engine, from_position=13).problem
    assert problem is not None
    assert (problem.position, problem.kind) == (EVENTS + 1, ProblemKind.ILLEGAL_TRANSITION)


def test_verify_on_a_database_without_tables_says_init(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SchemaNotReady):
        verify_log(engine)
    engine.dispose()


def test_the_log_is_still_append_only_for_everyone_else(engine: Engine, log: list[str]) -> None:
    """Sanity: the tampering above needed the triggers off."""
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.exec_driver_sql("UPDATE events SET actor = 'x' WHERE position = 1")


MUTATIONS = {
    "actor": "actor || 'x'",
    "data": "data || ' '",
    "type": "CASE WHEN type = 'failed' THEN 'completed' ELSE 'failed' END",
    "version": "version + 100",
    "prev_hash": "'" + "1" * 64 + "'",
    "hash": "'" + "2" * 64 + "'",
}


def test_any_single_field_change_anywhere_is_found_where_it_is(
    verify: Verify, attacker: Attacker, engine: Engine
) -> None:
    """Every position, every sealed field: changed, verified, restored.

    In parallel (3-position ranges), the positions on both sides of the first
    range boundaries and the last two (each walk forks workers: keep it short).
    """
    rows = attacker.rows()
    if verify is not verify_log:
        rows = [row for row in rows if row["position"] in (1, 3, 4, 6, 7, EVENTS - 1, EVENTS)]
    for row in rows:
        for column, change in MUTATIONS.items():
            attacker.execute(
                f"UPDATE events SET {column} = {change} WHERE position = :p", p=row["position"]
            )
            found = problem_at(engine, verify)
            assert found == (row["position"], ProblemKind.MODIFIED), (
                column,
                row["position"],
                found,
            )
            attacker.execute(
                f"UPDATE events SET {column} = :v WHERE position = :p",
                v=row[column],
                p=row["position"],
            )
    assert verify(engine).ok


def test_a_changed_time_is_modified(verify: Verify, attacker: Attacker, engine: Engine) -> None:
    row = attacker.rows()[7]
    later = row["occurred_at"] + timedelta(microseconds=1)
    with engine.begin() as conn:
        conn.execute(events.update().where(events.c.position == 8).values(occurred_at=later))
    assert problem_at(engine, verify) == (8, ProblemKind.MODIFIED)


def test_progress_in_parallel_reaches_the_head(engine: Engine, log: list[str]) -> None:
    seen: list[int] = []
    verify_log(engine, workers=2, page_size=3, on_progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == EVENTS


@pytest.mark.parametrize(
    "anchored",
    [
        {20: "hash of 20"},  # intact: the checkpoint matches
        {12: "hash of 10"},  # a checkpointed position inside the gap, at a range's end
        {11: "hash of 10", 20: "hash of 20"},  # the same, the walk resumes past the gap
        {20: "x" * 64},  # rewritten
        {5: "hash of 5", 40: "y" * 64},  # past the head: the tail is gone
    ],
)
def test_checkpoints_give_the_same_answer_in_parallel(
    attacker: Attacker, engine: Engine, anchored: dict[int, str]
) -> None:
    rows = {int(str(row["position"])): str(row["hash"]) for row in gapped_log(attacker)}
    anchors = {
        position: rows[int(value.rsplit(" ", 1)[1])] if value.startswith("hash of") else value
        for position, value in anchored.items()
    }
    single = verify_log(engine, anchors=anchors)
    assert verify_log(engine, anchors=anchors, workers=2, page_size=3) == single
    assert verify_log(engine, anchors=anchors, workers=2, page_size=3, from_position=7) == (
        verify_log(engine, anchors=anchors, from_position=7)
    )


@pytest.mark.parametrize("position", [1, 3, 4, 6, 7, 12, 13, EVENTS - 1])
def test_a_parallel_walk_explains_damage_exactly_as_a_single_one(
    attacker: Attacker, engine: Engine, position: int
) -> None:
    """Same position, kind and sentence, whichever side of a range boundary the damage is."""
    attacker.execute("DELETE FROM events WHERE position = :p", p=position)
    deleted = verify_log(engine)
    assert verify_log(engine, workers=2, page_size=3) == deleted
    assert deleted.problem is not None and deleted.problem.kind == ProblemKind.MISSING
