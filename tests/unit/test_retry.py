from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.retry import RetryPolicy

POLICY = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (10_000, 60.0)]
)
def test_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    assert POLICY.ceiling(attempt) == ceiling


@given(st.integers(min_value=1, max_value=500), st.integers())
def test_delay_is_within_zero_and_ceiling(attempt: int, seed: int) -> None:
    delay = POLICY.delay(attempt, random.Random(seed))
    assert timedelta(0) <= delay <= timedelta(seconds=POLICY.ceiling(attempt))


def test_delay_is_deterministic_for_a_seed() -> None:
    first = [POLICY.delay(n, random.Random(7)) for n in range(1, 10)]
    again = [POLICY.delay(n, random.Random(7)) for n in range(1, 10)]
    assert first == again


def test_jitter_spreads_delays() -> None:
    rng = random.Random(1)
    delays = {POLICY.delay(6, rng) for _ in range(50)}
    assert len(delays) == 50


@pytest.mark.parametrize(
    ("made", "max_attempts", "retryable", "expected"),
    [
        (1, 2, True, True),  # max_attempts=2: one try and one retry
        (2, 2, True, False),
        (1, 1, True, False),
        (1, 5, False, False),  # permanent error: never retried
        (4, 5, True, True),
        (5, 5, True, False),
    ],
)
def test_should_retry(made: int, max_attempts: int, retryable: bool, expected: bool) -> None:
    assert RetryPolicy.should_retry(made, max_attempts, retryable=retryable) is expected


def test_attempt_zero_is_a_bug() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        POLICY.ceiling(0)
