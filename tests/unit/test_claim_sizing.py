"""The adaptive prefetch: about ``ahead_seconds`` of work per handler thread, within bounds."""

from __future__ import annotations

import pytest

from ledger.claim_sizing import Prefetch


def settled(prefetch: Prefetch, seconds: float, runs: int = 500) -> int:
    for _ in range(runs):
        prefetch.observe(seconds)
    return prefetch.count


def test_before_any_run_one_job_per_thread() -> None:
    assert Prefetch(8).count == 8


@pytest.mark.parametrize(
    ("run_seconds", "expected"),
    [
        (0.00001, 256),  # a no-op: the deepest prefetch
        (0.001, 256),  # 8 threads x 0.25 s / 1 ms = 2000, capped
        (0.01, 200),  # 8 x 0.25 / 0.01
        (0.1, 20),
        (1.0, 8),  # slow jobs: one per thread, as a fixed default would
        (30.0, 8),
    ],
)
def test_the_prefetch_follows_the_run_time(run_seconds: float, expected: int) -> None:
    assert settled(Prefetch(8), run_seconds) == expected


def test_it_follows_the_average_back_and_forth() -> None:
    prefetch = Prefetch(8)
    settled(prefetch, 0.00001)
    prefetch.observe(5.0)  # one slow job among fast ones: less ahead for a while
    assert prefetch.count < 256
    assert settled(prefetch, 0.00001, runs=200) == 256
    assert settled(prefetch, 1.0) == 8  # the jobs became slow


def test_a_fixed_prefetch_stays_fixed() -> None:
    prefetch = Prefetch(8, fixed=0)
    assert settled(prefetch, 0.00001) == 0
    assert Prefetch(4, fixed=300).count == 300


def test_a_zero_run_time_is_the_deepest() -> None:
    assert settled(Prefetch(2), 0.0, runs=1) == 256


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Prefetch(0)
    with pytest.raises(ValueError, match="negative"):
        Prefetch(2, fixed=-1)
