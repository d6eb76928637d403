"""``MemoryQueue``: the hot queue's three sorted sets, leases and cache in a dict each.

Each method does what its Lua script does (``ledger/queue/scripts/*.lua``), under
one lock, with a millisecond clock of its own standing in for Redis ``TIME``
(pass one in to move time by hand).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from ledger.lifecycle import Job
from ledger.queue import Claim, Depths


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryQueue:
    """A ``WorkQueue`` (``ledger.ports``) held in memory."""

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
        payload_ttl_seconds: int = 86_400,
        wake_tokens: int = 16,
    ) -> None:
        self.clock_ms = clock_ms
        self.payload_ttl_seconds = payload_ttl_seconds
        self.wake_tokens = wake_tokens
        self.ready: dict[str, int] = {}
        self.delayed: dict[str, int] = {}
        self.inflight: dict[str, int] = {}
        #: job id -> (cached state, expiry ms)
        self.payloads: dict[str, tuple[Job, int]] = {}
        #: (operator stream version, paused) as ``set_controls`` stored them
        self.controls: tuple[int, bool] | None = None
        self._tokens = 0
        self._recovered = False
        self._wake = threading.Condition()

    # -- test helpers (what a Redis test reads with ZSCORE) --------------------------

    def holds(self, job_id: str) -> str | None:
        """Which set holds the job (``ready``, ``delayed``, ``inflight``) or ``None``."""
        for name in ("ready", "delayed", "inflight"):
            if job_id in getattr(self, name):
                return name
        return None

    def score(self, job_id: str, where: str) -> int | None:
        held: dict[str, int] = getattr(self, where)
        return held.get(job_id)

    def flush(self) -> None:
        """Lose every key, as a FLUSHALL or a restart without persistence would."""
        with self._wake:
            self.ready.clear()
            self.delayed.clear()
            self.inflight.clear()
            self.payloads.clear()
            self.controls = None
            self._tokens = 0
            self._recovered = False

    # -- the port ----------------------------------------------------------------------

    def close(self) -> None:
        pass

    def ping(self) -> None:
        pass

    def check_safe(self) -> None:
        pass  # memory never evicts

    def mark_recovered(self) -> None:
        self._recovered = True

    def looks_flushed(self) -> bool:
        return not self._recovered

    def push(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        with self._wake:
            self._cache(snapshots, only_missing=False)
            now = self.clock_ms()
            pushed = woken = 0
            for job_id, due in items:
                if self.holds(job_id) is not None:
                    continue
                pushed += 1
                if due > now:
                    self.delayed[job_id] = due
                else:
                    self.ready[job_id] = due if due > 0 else now
                    woken += 1
            self._wake_up(woken)
            return pushed

    def move(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        with self._wake:
            self._cache(snapshots, only_missing=False)
            now = self.clock_ms()
            due_of = dict(items)  # the last due time given for an id wins
            woken = 0
            for job_id, due in due_of.items():
                self._remove(job_id)
                if due > now:
                    self.delayed[job_id] = due
                else:
                    self.ready[job_id] = now
                    woken += 1
            self._wake_up(woken)
            return woken

    def restore(self, items: Sequence[tuple[str, int]]) -> int:
        with self._wake:
            restored = 0
            for job_id, deadline in items:
                if self.holds(job_id) is None:
                    self.inflight[job_id] = deadline
                    restored += 1
            return restored

    def finish(self, job_ids: Sequence[str]) -> int:
        with self._wake:
            removed = 0
            for job_id in job_ids:
                removed += self._remove(job_id)
                self.payloads.pop(job_id, None)
            return removed

    def set_controls(self, version: int, *, paused: bool, rate: int = 0) -> bool:
        # the twin keeps pause only: the rate limit's token bucket is the claim script's
        with self._wake:
            if self.controls is not None and self.controls[0] > version:
                return False
            self.controls = (version, paused)
            return True

    def claim(self, limit: int, lease_ms: int, promote: int = 1000) -> Claim:
        with self._wake:
            now = self.clock_ms()
            if self.controls is not None and self.controls[1]:
                return Claim(now, None, [], paused=True)
            due = sorted((score, job_id) for job_id, score in self.delayed.items() if score <= now)
            for score, job_id in due[:promote]:
                del self.delayed[job_id]
                self.ready[job_id] = score
            oldest = sorted((score, job_id) for job_id, score in self.ready.items())
            taken = [job_id for _score, job_id in oldest[: max(limit, 0)]]
            for job_id in taken:
                del self.ready[job_id]
                self.inflight[job_id] = now + lease_ms
            if not self.ready:
                self._tokens = 0
            next_due = min(self.delayed.values(), default=None)
            return Claim(now, next_due, taken)

    def wait(self, timeout: float) -> bool:
        with self._wake:
            if self._tokens == 0:
                self._wake.wait(max(timeout, 0.01))
            if self._tokens == 0:
                return False
            self._tokens -= 1
            return True

    def renew(self, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        with self._wake:
            deadline = self.clock_ms() + lease_ms
            lost: list[str] = []
            for job_id in job_ids:
                if job_id in self.inflight:
                    self.inflight[job_id] = deadline
                else:
                    lost.append(job_id)
            return lost

    def reap(self, limit: int, grace_ms: int) -> list[str]:
        with self._wake:
            now = self.clock_ms()
            expired = sorted(
                (score, job_id) for job_id, score in self.inflight.items() if score <= now - 1
            )[:limit]
            for _score, job_id in expired:
                self.inflight[job_id] = now + grace_ms
            return [job_id for _score, job_id in expired]

    def cache(self, jobs: Sequence[Job], *, only_missing: bool = False) -> None:
        with self._wake:
            self._cache(jobs, only_missing=only_missing)

    def cached(self, job_ids: Sequence[str]) -> dict[str, Job]:
        with self._wake:
            now = self.clock_ms()
            return {
                job_id: entry[0]
                for job_id in job_ids
                if (entry := self.payloads.get(job_id)) is not None and entry[1] > now
            }

    def clean_payloads(self, batch: int = 500) -> int:
        with self._wake:
            unheld = [job_id for job_id in self.payloads if self.holds(job_id) is None]
            for job_id in unheld:
                del self.payloads[job_id]
            return len(unheld)

    def depths(self) -> Depths:
        with self._wake:
            now = self.clock_ms()
            due = sum(1 for score in self.delayed.values() if score <= now)
            expired = sum(1 for score in self.inflight.values() if score <= now - 1)
            oldest = min(self.ready.values(), default=None)
            return Depths(
                now, len(self.ready), len(self.delayed) - due, due, len(self.inflight), expired,
                oldest,
            )  # fmt: skip

    def delayed_due_by(self, deadline_ms: int) -> int:
        with self._wake:
            return sum(1 for score in self.delayed.values() if score <= deadline_ms)

    # -- inside the lock ------------------------------------------------------------------

    def _remove(self, job_id: str) -> int:
        removed = 0
        for held in (self.ready, self.delayed, self.inflight):
            if held.pop(job_id, None) is not None:
                removed += 1
        return removed

    def _cache(self, jobs: Sequence[Job], *, only_missing: bool) -> None:
        expires = self.clock_ms() + self.payload_ttl_seconds * 1000
        for job in jobs:
            if only_missing and job.job_id in self.payloads:
                continue
            self.payloads[job.job_id] = (job, expires)

    def _wake_up(self, woken: int) -> None:
        if woken > 0:
            self._tokens = min(self._tokens + woken, self.wake_tokens)
            self._wake.notify_all()
