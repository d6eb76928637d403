"""A simulated payment gateway: a handler for demos, load tests and trying the ledger out.

Decisions are a pure function of (seed, idempotency key, attempt), so a run is
reproducible whatever order the worker threads take. Like a real provider it
deduplicates by idempotency key: paying the same key twice charges once. It
answers with a payout reference and a fee; ``pending_rate`` of payouts are
accepted and confirmed later (``confirm``, as a webhook would, or ``poll``).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure
from ledger.events import format_time
from ledger.provider import ProviderResult

#: the simulated provider's fee per payout, in minor units
FEE = 10


def chance(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) for ``parts`` under ``seed``."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class Payment:
    idempotency_key: str
    amount: int
    currency: str
    #: when the provider paid it (its statement's ``settled_at``)
    paid_at: datetime | None = None
    reference: str | None = None


def reference_of(key: str) -> str:
    """The simulated provider's payout id for an idempotency key (stable across retries)."""
    return "po-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class SimulatedGateway:
    """Fails transiently at ``fail_rate`` per attempt; refuses ``permanent_rate`` of keys."""

    seed: int = 0
    fail_rate: float = 0.1
    permanent_rate: float = 0.01
    #: share of payouts accepted now and confirmed later
    pending_rate: float = 0.0
    #: keys an operator fixed (their account was verified): no longer refused
    fixed: set[str] = field(default_factory=set)
    payments: dict[str, Payment] = field(default_factory=dict)
    #: accepted payouts not confirmed yet, by reference
    pending: dict[str, Payment] = field(default_factory=dict)
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, job: ClaimedJob) -> ProviderResult:
        key = job.provider_key
        with self._lock:
            self.calls += 1
        if job.idempotency_key not in self.fixed and self.refuses(job.idempotency_key):
            raise PermanentFailure("account closed at the payment provider")
        if chance(self.seed, key, job.attempt) < self.fail_rate:
            raise TimeoutError("payment gateway timed out")
        reference = reference_of(key)
        with self._lock:
            if key in self.payments:
                return ProviderResult(reference=reference, fee=FEE, status="PAID")
            payment = Payment(key, job.amount, job.request.currency, reference=reference)
            if chance(self.seed, key, "pending") < self.pending_rate:
                self.pending.setdefault(reference, payment)
                return ProviderResult(reference=reference, status="REQUESTED", pending=True)
            self.payments[key] = _paid(payment)
        return ProviderResult(reference=reference, fee=FEE, status="PAID")

    def confirm(self, reference: str) -> ProviderResult:
        """The provider pays an accepted payout (what its webhook then reports)."""
        with self._lock:
            payment = self.pending.pop(reference, None)
            if payment is not None:
                self.payments.setdefault(payment.idempotency_key, _paid(payment))
        return ProviderResult(reference=reference, fee=FEE, status="PAID")

    def poll(self, job: ClaimedJob) -> ProviderResult:
        """A status look-up: an accepted payout is paid by the time anyone asks."""
        return self.confirm(job.reference or reference_of(job.provider_key))

    def refuses(self, key: str) -> bool:
        return chance(self.seed, key, "permanent") < self.permanent_rate

    def statement_csv(self, settled_at: str | None = None) -> str:
        """The provider's report of what it paid (what `ledger reconcile --statement` reads).

        Each line's ``settled_at`` is when it paid, or ``settled_at`` for every line.
        """
        lines = ["reference,idempotency_key,amount,currency,settled_at"]
        with self._lock:
            for payment in sorted(self.payments.values(), key=lambda p: p.idempotency_key):
                when = settled_at or format_time(payment.paid_at or datetime.now(UTC))
                lines.append(
                    f"{payment.reference or ''},{payment.idempotency_key},{payment.amount},"
                    f"{payment.currency},{when}"
                )
        return "\n".join(lines) + "\n"


def _paid(payment: Payment) -> Payment:
    return Payment(
        payment.idempotency_key,
        payment.amount,
        payment.currency,
        datetime.now(UTC),
        payment.reference,
    )


def accept_all(job: ClaimedJob) -> None:
    """A handler that pays everything at once (for `ledger serve --handler` try-outs)."""
    del job
