"""How many jobs a worker holds claimed ahead of its handler threads (its prefetch).

Each claim is one SQL transaction (the ``attempted`` events, a commit), and so is
each batch of outcomes; a worker that holds few jobs ahead pays a commit for a
few jobs, and with fast jobs the commits, not the handlers, set its pace. A
worker that holds many jobs ahead makes slow jobs wait leased behind each other.

So the default prefetch is measured in time, not in jobs: enough jobs for each
handler thread to have about ``ahead_seconds`` of work waiting, judged by how
long the handler has been taking (a moving average), never fewer than one per
thread and never more than ``most``. Fast jobs (a no-op takes microseconds) get
the deepest prefetch, and big claim and outcome batches; a job that takes a
second gets one job per thread ahead, as before. A lease's length does not
change: a crashed worker's jobs are reclaimed as soon as before, and with slow
jobs there are as few of them.

Pure: the worker tells it each handler's run time, it says the prefetch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["Prefetch"]


@dataclass
class Prefetch:
    """The prefetch of one worker: ``fixed`` (``--prefetch N``), or adaptive (the default)."""

    concurrency: int
    fixed: int | None = None
    #: work each handler thread should have waiting (seconds of its average run time)
    ahead_seconds: float = 0.25
    #: the deepest adaptive prefetch (the claim batches it allows are about half of it)
    most: int = 256
    #: weight of the newest run time in the moving average
    weight: float = 0.05
    _mean: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.fixed is not None and self.fixed < 0:
            raise ValueError("a fixed prefetch must not be negative")

    def observe(self, seconds: float) -> None:
        """One handler run took ``seconds`` (every handler thread calls this)."""
        if self.fixed is not None:
            return
        with self._lock:
            if self._mean is None:
                self._mean = seconds
            else:
                self._mean += self.weight * (seconds - self._mean)

    @property
    def mean_seconds(self) -> float | None:
        """The moving average of the handler's run time (None before the first run)."""
        return self._mean

    @property
    def count(self) -> int:
        """Jobs to hold claimed beyond one per handler thread."""
        if self.fixed is not None:
            return self.fixed
        floor = self.concurrency
        mean = self._mean
        if mean is None:  # nothing measured yet: one job ahead per thread
            return floor
        if mean <= 0:
            return max(floor, self.most)
        wanted = int(self.concurrency * self.ahead_seconds / mean)
        return max(floor, min(wanted, self.most))
