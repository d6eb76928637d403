"""Property tests of the pure fold over random valid logs (no database)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.memory import MemoryProjection, batched
from projections.stats import balances
from tests.projection_logs import Plan, plans, stored_plan


def folded(events: list, sizes: list[int]) -> MemoryProjection:  # type: ignore[type-arg]
    """Fold in batches of the given sizes (cycled)."""
    memory = MemoryProjection()
    index = 0
    turn = 0
    while index < len(events):
        size = sizes[turn % len(sizes)]
        memory.apply(events[index : index + size])
        index += size
        turn += 1
    return memory


@settings(max_examples=100, deadline=None)
@given(plan=plans(), sizes=st.lists(st.integers(1, 17), min_size=1, max_size=6))
def test_chunked_fold_equals_one_fold(plan: Plan, sizes: list[int]) -> None:
    events = stored_plan(plan)
    whole = MemoryProjection().replay(events, batch_size=len(events))
    chunked = folded(events, sizes)
    assert chunked.snapshot() == whole.snapshot(), chunked.snapshot().differences(whole.snapshot())


@settings(max_examples=100, deadline=None)
@given(plan=plans(), data=st.data())
def test_prefix_fold_is_the_state_as_of_that_position(plan: Plan, data: st.DataObject) -> None:
    events = stored_plan(plan)
    cut = data.draw(st.integers(0, len(events)))
    as_of = MemoryProjection().replay(events[:cut], batch_size=5)
    continued = MemoryProjection().replay(events[:cut], batch_size=3)
    continued.replay(events[cut:], batch_size=4)
    assert as_of.position == cut
    assert continued.snapshot() == MemoryProjection().replay(events).snapshot()


@settings(max_examples=100, deadline=None)
@given(plan=plans(), data=st.data())
def test_money_is_conserved_at_every_position(plan: Plan, data: st.DataObject) -> None:
    events = stored_plan(plan)
    memory = MemoryProjection()
    for batch in batched(events, data.draw(st.integers(1, 9))):
        memory.apply(batch)
        now = batch[-1].occurred_at
        stored = memory.stored_stats(now)
        for balance in balances(stored):
            assert balance.balanced, balance
        # the incremental rows agree with a count over the jobs themselves
        assert stored == memory.queue_stats(now)
