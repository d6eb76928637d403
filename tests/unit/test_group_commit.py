"""``GroupCommit``: who writes, what goes into which batch, who gets which outcome.

The writes here are plain functions that record their batches and, where a test
needs callers to queue up behind a write in progress, wait on an ``Event`` until
the test has seen them queue (no sleeps, no timing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from ledger.errors import DatabaseUnavailable, IdempotencyConflict, LedgerError
from ledger.group_commit import GroupCommit, WriterLost
from tests.queue_fixtures import wait_until


class Writer:
    """A write that records its batches; ``hold`` makes the next write wait for ``release``."""

    def __init__(self, outcome: Callable[[str], str | Exception] = str.upper) -> None:
        self.batches: list[list[str]] = []
        self.outcome = outcome
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def __call__(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        self.entered.set()
        assert self.gate.wait(30), "the test never released the write"
        return [self.outcome(item) for item in items]


def queue_behind_a_write(
    group: GroupCommit[str, str], writer: Writer, pool: ThreadPoolExecutor, items: list[str]
) -> tuple[Future[str], list[Future[str]]]:
    """``first`` writing (held), then ``items`` submitted and queued behind it."""
    writer.hold()
    first = pool.submit(group.submit, "first")
    assert writer.entered.wait(30)
    futures = [pool.submit(group.submit, item) for item in items]
    wait_until(lambda: group.waiting == len(items), 30, "the callers to queue")
    return first, futures


def test_an_idle_writer_writes_at_once_alone() -> None:
    writer = Writer()
    group = GroupCommit(writer)
    assert group.submit("a") == "A"
    assert group.submit("b") == "B"
    assert writer.batches == [["a"], ["b"]]


def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    writer = Writer()
    group = GroupCommit(writer, max_batch=100)
    items = [f"job-{n}" for n in range(20)]
    with ThreadPoolExecutor(max_workers=21) as pool:
        first, futures = queue_behind_a_write(group, writer, pool, items)
        writer.gate.set()
        assert first.result(30) == "FIRST"
        assert [f.result(30) for f in futures] == [item.upper() for item in items]
    assert writer.batches[0] == ["first"]
    assert writer.batches[1:] == [items]  # all twenty in one write, in arrival order
    assert (group.batches, group.items) == (2, 21)


def test_a_batch_is_bounded() -> None:
    writer = Writer()
    group = GroupCommit(writer, max_batch=3)
    items = [f"job-{n}" for n in range(7)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        first, futures = queue_behind_a_write(group, writer, pool, items)
        writer.gate.set()
        assert first.result(30) == "FIRST"
        assert [f.result(30) for f in futures] == [item.upper() for item in items]
    assert [len(batch) for batch in writer.batches] == [1, 3, 3, 1]
    assert sorted(item for batch in writer.batches[1:] for item in batch) == sorted(items)


def test_an_item_that_fails_fails_only_its_own_caller() -> None:
    def outcome(item: str) -> str | Exception:
        return IdempotencyConflict(item, "job-1") if item == "bad" else item.upper()

    writer = Writer(outcome)
    group = GroupCommit(writer)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first, futures = queue_behind_a_write(group, writer, pool, ["a", "bad", "c"])
        writer.gate.set()
        assert first.result(30) == "FIRST"
        assert futures[0].result(30) == "A"
        with pytest.raises(IdempotencyConflict, match="bad"):
            futures[1].result(30)
        assert futures[2].result(30) == "C"
    assert writer.batches == [["first"], ["a", "bad", "c"]]


def test_a_write_that_fails_as_a_whole_fails_every_caller_of_its_batch() -> None:
    calls = 0

    def write(items: Sequence[str]) -> list[str | Exception]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseUnavailable("the database cannot be reached")
        return [item.upper() for item in items]

    writer = Writer()
    group: GroupCommit[str, str] = GroupCommit(lambda items: write(writer(items)), max_batch=2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first, futures = queue_behind_a_write(group, writer, pool, ["a", "b", "c"])
        writer.gate.set()
        assert first.result(30) == "FIRST"
        errors = [f.exception(30) for f in futures[:2]]
        assert all(isinstance(e, DatabaseUnavailable) for e in errors)
        assert errors[0] is not errors[1]  # each caller raises its own copy
        assert futures[2].result(30) == "C"  # the next batch is written as usual


def test_after_runs_outside_the_writers_turn() -> None:
    """A batch's ``after`` (the Redis push) does not keep the next batch from being written."""
    pushing = threading.Event()
    push_gate = threading.Event()

    def after(outcomes: Sequence[str | Exception]) -> list[str | Exception]:
        if outcomes == ["FIRST"]:
            pushing.set()
            assert push_gate.wait(30)
        return [f"{o}!" for o in outcomes if isinstance(o, str)]

    writer = Writer()
    group = GroupCommit(writer, after=after)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(group.submit, "first")
        assert pushing.wait(30)
        assert group.submit("second") == "SECOND!"  # written while the first one pushes
        push_gate.set()
        assert first.result(30) == "FIRST!"


def test_an_after_that_fails_gives_its_error_to_the_batch() -> None:
    def after(outcomes: Sequence[str | Exception]) -> list[str | Exception]:
        raise LedgerError("push failed")

    group = GroupCommit(Writer(), after=after)
    with pytest.raises(LedgerError, match="push failed"):
        group.submit("a")


def test_a_write_giving_the_wrong_number_of_outcomes_is_an_error_for_each() -> None:
    group: GroupCommit[str, str] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.submit("a")


def test_an_interrupted_writer_frees_its_followers() -> None:
    class Interrupt(BaseException):
        pass

    writer = Writer()

    def write(items: Sequence[str]) -> list[str | Exception]:
        writer(items)
        if len(items) > 1:
            raise Interrupt()
        return [item.upper() for item in items]

    group: GroupCommit[str, str] = GroupCommit(write)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first, futures = queue_behind_a_write(group, writer, pool, ["a", "b"])
        writer.gate.set()
        assert first.result(30) == "FIRST"
        outcomes = [f.exception(30) for f in futures]
    # the leader of ["a", "b"] gets the interrupt itself, the other caller WriterLost
    assert sorted(type(o).__name__ for o in outcomes) == ["Interrupt", "WriterLost"]
    assert isinstance(next(o for o in outcomes if not isinstance(o, Interrupt)), WriterLost)
    assert group.submit("c") == "C"  # and the group still writes


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(Writer(), max_batch=0)
