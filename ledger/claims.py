"""What a worker holds and hands back: a claimed attempt, and its outcome.

Plain data, no IO. A ``ClaimedJob`` is also what a handler receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.errors import StaleAttempt
from ledger.lifecycle import Job
from ledger.provider import ProviderResult, provider_key
from ledger.request import SettlementRequest


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds for one attempt: what its handler receives.

    ``state`` is the job as folded right after ``attempted`` was recorded; its
    version is the one every outcome of this attempt must be appended at.
    """

    state: Job
    lease_until: datetime
    request: SettlementRequest

    @property
    def id(self) -> str:
        return self.state.job_id

    @property
    def attempt(self) -> int:
        return self.state.attempts

    @property
    def idempotency_key(self) -> str:
        return self.request.idempotency_key

    @property
    def round(self) -> int:
        """The payment round: 1, and one more for each new round of a reversed amount."""
        return self.state.round

    @property
    def amount(self) -> int:
        """What to pay in this round, in minor units of ``request.currency``."""
        return self.state.payable

    @property
    def provider_key(self) -> str:
        """The idempotency key to give the provider: the job's key in round 1,
        ``KEY:round-N`` in later rounds (``ledger.provider.provider_key``)."""
        return provider_key(self.idempotency_key, self.round)

    @property
    def reference(self) -> str | None:
        """The provider's payout id, once a provider reported one (a submitted payout's)."""
        return self.state.reference

    @property
    def worker_id(self) -> str:
        return self.state.worker or "worker"


def logged_request(record: Mapping[str, Any]) -> SettlementRequest:
    """The request of a job from the log, without validating it again.

    It was validated before its ``enqueued`` event was appended, and the log is
    append-only; validating every claimed job's request again cost more CPU than
    the rest of the claim.
    """
    return SettlementRequest.model_construct(**record)


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """Jobs claimed in one call, and when the next delayed job falls due (Redis clock);
    ``paused``: the queue is paused (``ledger.control``), so nothing was claimed."""

    jobs: list[ClaimedJob]
    now: datetime
    next_due: datetime | None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: ``error`` is ``None`` on success."""

    job: ClaimedJob
    error: str | None = None
    retryable: bool = True
    #: what the provider reported on success (``None``: paid, nothing reported)
    result: ProviderResult | None = None


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    """What the log made of an outcome: the job's new state, or the refusal."""

    job_id: str
    attempt: int
    state: Job | None = None
    refused: StaleAttempt | None = None

    @property
    def recorded(self) -> bool:
        return self.refused is None
