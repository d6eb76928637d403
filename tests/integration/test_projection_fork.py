"""The fold in a forked child (``projections.folder``): same rows, errors come back, no orphans."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledger.errors import FoldProcessLost, IllegalTransition
from ledger.store import EventStore
from projections import runner
from projections.fold import Fold, RawEvent
from projections.folder import ForkedFolder, LocalFolder
from projections.memory import MemoryProjection
from projections.runner import Projector, rebuild, replay
from projections.schema import LIVE, SCRATCH
from projections.snapshot import read_snapshot
from tests.projection_logs import Plan, append_plan, plans, seeded_plan


def fold_of(store: EventStore, until: int | None = None) -> MemoryProjection:
    return MemoryProjection().replay(store.read_all(until_position=until))


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every run folds in a child, however short (the real threshold is thousands of events)."""
    monkeypatch.setattr(runner, "FORK_MIN_EVENTS", 0)
    yield
    assert multiprocessing.active_children() == []


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans(max_transactions=12), data=st.data())
def test_a_forked_fold_writes_what_an_in_process_fold_writes(
    store: EventStore, engine: Engine, forked: None, plan: Plan, data: st.DataObject
) -> None:
    append_plan(store, plan)
    expected = fold_of(store).snapshot()
    # a tiny memory cap makes the child ask this process for stored jobs again and again
    projector = Projector(
        store,
        LIVE,
        batch_size=data.draw(st.integers(1, 30), label="batch"),
        held_jobs=data.draw(st.integers(0, 3), label="held"),
    )
    projector.reset()
    projector.catch_up()
    assert read_snapshot(engine) == expected


def test_the_runner_forks_only_for_long_runs(store: EventStore) -> None:
    append_plan(store, seeded_plan(5))
    head = store.head().position
    assert isinstance(Projector(store, fork_min_events=head + 1).folder(0), LocalFolder)
    folder = Projector(store, fork_min_events=head).folder(0)
    try:
        assert isinstance(folder, ForkedFolder)
    finally:
        folder.close()
    assert multiprocessing.active_children() == []


def test_a_forked_rebuild_and_as_of_equal_the_fold(
    store: EventStore, engine: Engine, forked: None
) -> None:
    append_plan(store, seeded_plan(20))
    head = store.head().position
    assert rebuild(store, batch_size=7) == head
    assert read_snapshot(engine) == fold_of(store).snapshot()
    middle = head // 2
    assert replay(store, until_position=middle, batch_size=5) == middle
    assert read_snapshot(engine, SCRATCH) == fold_of(store, middle).snapshot()


def break_the_child(monkeypatch: pytest.MonkeyPatch, failure: Callable[[Fold], None]) -> None:
    """The forked fold calls ``failure`` once it is past position 10 (this process is unharmed)."""
    real = Fold.fold
    parent = os.getpid()

    def folding(self: Fold, rows: list[RawEvent]) -> None:
        if os.getpid() != parent and self.position > 10:
            failure(self)
        real(self, rows)

    monkeypatch.setattr(Fold, "fold", folding)


def test_an_error_in_the_child_comes_back_as_itself(
    store: EventStore, engine: Engine, forked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_plan(store, seeded_plan(15))
    Projector(store).catch_up()
    before = read_snapshot(engine)

    def refuse(fold: Fold) -> None:
        raise IllegalTransition("job-x", None, "failed")

    break_the_child(monkeypatch, refuse)
    with pytest.raises(IllegalTransition, match="job-x"):
        rebuild(store, batch_size=4)
    assert read_snapshot(engine) == before


def test_a_child_that_dies_is_an_error_not_a_hang(
    store: EventStore, engine: Engine, forked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_plan(store, seeded_plan(15))
    Projector(store).catch_up()
    before = read_snapshot(engine)
    real = Fold.fold
    break_the_child(monkeypatch, lambda _fold: os._exit(9))  # killed: no error, no "end"
    with pytest.raises(FoldProcessLost, match="exit code 9"):
        rebuild(store, batch_size=4)
    assert read_snapshot(engine) == before
    monkeypatch.setattr(Fold, "fold", real)
    assert rebuild(store, batch_size=4) == store.head().position
    assert read_snapshot(engine) == fold_of(store).snapshot()
