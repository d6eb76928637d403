"""Retry policy: exponential backoff with full jitter and a cap. Pure; the RNG is passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` counts every attempt, the first included (2 = one try, one retry)."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def ceiling(self, attempt: int) -> float:
        """Largest delay after the ``attempt``-th failure (1-based): min(cap, base·2^(n-1))."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        # cap the exponent too, so attempt 10_000 does not build a huge integer
        return min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 64))

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Full jitter (AWS architecture blog): uniform in [0, ceiling]."""
        return timedelta(seconds=rng.uniform(0.0, self.ceiling(attempt)))

    @staticmethod
    def should_retry(attempts_made: int, max_attempts: int, *, retryable: bool = True) -> bool:
        """Retry while the budget lasts and the error is not permanent."""
        return retryable and attempts_made < max_attempts
