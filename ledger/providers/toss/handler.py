"""``ledger.providers.toss:payout``: the worker's handler, with ``poll`` and ``cancel``.

One payout per payment round, never two:

* the payee is the settlement's ``metadata.tossSellerId`` (refused before any
  call when it is missing);
* our ``refPayoutId`` (and the ``Idempotency-Key``) is the round's provider key
  (``job.provider_key``); after Toss *failed* that payout, ``KEY:retry-2``, …;
* before requesting, the handler looks the round's payouts up by refPayoutId
  in order: a live one (REQUESTED, IN_PROGRESS) is the answer (``pending``), a
  COMPLETED one is paid, a FAILED or CANCELED one moves on to the next number;
  only the first number Toss has never seen is requested. So a call that timed
  out after Toss accepted it is found, not paid again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure, ProviderRefused
from ledger.provider import ProviderResult
from ledger.providers.toss.client import TossClient
from ledger.providers.toss.errors import TossError, TossRefused
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.wire import (
    CANCELED_STATUS,
    ErrorKind,
    Payout,
    error_kind,
    failure_reason,
    is_failed,
    payout_request,
    ref_payout_id,
    result_of,
    seller_of,
)

#: payouts Toss may fail in one round before the job is dead-lettered for an operator
MAX_PAYOUTS_PER_ROUND = 20


class TossPayouts:
    """The handler (see the module docstring). Its client is built on first use."""

    def __init__(self, client: Callable[[], TossClient] | None = None) -> None:
        self._make = client or (lambda: TossClient(TossSettings()))
        self._client: TossClient | None = None
        self._lock = threading.Lock()

    def client(self) -> TossClient:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __call__(self, job: ClaimedJob) -> ProviderResult:
        """Pay the job's round: the live or paid payout Toss has for it, else a new request."""
        seller = seller_of(job)
        client = self.client()
        for number in range(1, MAX_PAYOUTS_PER_ROUND + 1):
            ref = ref_payout_id(job.provider_key, number)
            found = client.find_payout(ref)
            if found is None:
                return answer(client.request_payout(
                    payout_request(job, seller, ref), idempotency_key=ref
                ))  # fmt: skip
            if not is_failed(found):
                return result_of(found)
        raise PermanentFailure(
            f"Toss failed {MAX_PAYOUTS_PER_ROUND} payouts of this round; look at the seller's "
            "account at Toss before requeueing"
        )

    def poll(self, job: ClaimedJob) -> ProviderResult:
        """Look a submitted payout up by its payout id (``job.reference``)."""
        if job.reference is None:
            raise PermanentFailure("no Toss payout id to look up")
        return answer(self.client().get_payout(job.reference))

    def cancel(self, job: ClaimedJob) -> ProviderResult:
        """Cancel a submitted payout at Toss (allowed before it executes); ``ProviderRefused``
        when Toss will not."""
        if job.reference is None:
            raise ProviderRefused("this payout has no Toss payout id to cancel")
        try:
            payout = self.client().cancel_payout(
                job.reference, idempotency_key=f"{job.reference}:cancel"
            )
        except TossRefused as refused:
            raise ProviderRefused(
                f"Toss refused to cancel payout {job.reference}: {refused.code}: "
                f"{refused.provider_message}; the payout stands"
            ) from None
        except TossError as error:
            raise ProviderRefused(
                f"Toss did not confirm the cancellation of {job.reference} ({error.message}); "
                "the payout stands until it does: try again"
            ) from None
        if payout.status != CANCELED_STATUS:
            raise ProviderRefused(
                f"Toss left payout {payout.id} {payout.status} instead of cancelling it"
            )
        return ProviderResult(reference=payout.id, status=payout.status)


def answer(payout: Payout) -> ProviderResult:
    """A payout Toss returned, as this attempt's outcome: pending, paid, or failed (retryable
    when Toss's code says the failure is temporary, else dead-lettered)."""
    if not is_failed(payout):
        return result_of(payout)
    if failure_retryable(payout):
        raise TossError(failure_reason(payout))
    raise PermanentFailure(failure_reason(payout))


def failure_retryable(payout: Payout) -> bool:
    """A FAILED payout is tried again (as a new payout) only when Toss's code says the
    failure was temporary; a CANCELED one never is."""
    if payout.status == CANCELED_STATUS:
        return False
    return error_kind(400, payout.error_code) is ErrorKind.RETRYABLE


#: the handler ``ledger worker --handler ledger.providers.toss:payout`` loads
payout = TossPayouts()
