"""How a worker runs and what it counts: its options, its statistics, its id.

Plain data; ``ledger.worker`` runs on them (and re-exports them).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import assert_never

from ledger.lifecycle import JobStatus


def new_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in the log's ``actor`` column."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs (the CLI fills these from its flags and the settings)."""

    concurrency: int = 1
    #: jobs claimed ahead of free handler threads (default: adaptive, see
    #: ``ledger.claim_sizing``); bigger batches mean fewer SQL transactions per job,
    #: but prefetched jobs wait leased
    prefetch: int | None = None
    burst: bool = False
    #: in burst mode, delayed jobs due further ahead than this are left for another run
    burst_horizon: timedelta = timedelta(seconds=60)
    lease: timedelta = timedelta(seconds=30)
    sweep_seconds: float = 1.0
    #: longest block on Redis while idle (a push wakes the claimer sooner)
    idle_seconds: float = 1.0
    #: most outcomes recorded in one SQL transaction
    batch: int = 500
    #: how long the flusher waits for more outcomes to join a batch
    linger_seconds: float = 0.005
    #: how often stale payload cache entries are dropped from Redis
    cleanup_seconds: float = 600.0


@dataclass
class WorkerStats:
    """What this worker recorded."""

    claimed: int = 0
    completed: int = 0
    #: payouts the provider accepted, to confirm later
    submitted: int = 0
    retried: int = 0
    dead_lettered: int = 0
    refused: int = 0
    lost_leases: int = 0
    #: delayed jobs left in the queue when a burst run stopped (due past its horizon)
    delayed_left: int = 0
    #: a burst run stopped because the queue was paused (``ledger pause``)
    paused: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, claimed: int = 0, **states: int) -> None:
        with self.lock:
            self.claimed += claimed
            for name, value in states.items():
                setattr(self, name, getattr(self, name) + value)


def counter_of(status: JobStatus) -> str:
    """The worker statistic an outcome that left the job in ``status`` counts towards."""
    match status:
        case JobStatus.COMPLETED:
            return "completed"
        case JobStatus.DEAD:
            return "dead_lettered"
        case JobStatus.SUBMITTED:
            return "submitted"
        case JobStatus.WAITING | JobStatus.PROCESSING | JobStatus.FAILED | JobStatus.CANCELLED:
            # cancelled: an outcome never cancels; counted with the jobs not finished by it
            return "retried"
        case _:
            assert_never(status)
