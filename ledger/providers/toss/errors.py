"""How a Toss call went wrong, in the ledger's terms: retryable, or refused for good."""

from __future__ import annotations

from ledger.errors import LedgerError, PermanentFailure


class TossError(LedgerError):
    """A Toss Payments call failed; the attempt is retried (the payout is looked up first)."""


class TossUnavailable(TossError):
    """Toss did not answer (connection error, timeout, 5xx); the attempt is retried and the
    payout looked up by its refPayoutId before it is requested again."""


class TossRateLimited(TossUnavailable):
    """Toss asked us to slow down (429); the attempt is retried after its hint."""

    def __init__(self, retry_after: float | None) -> None:
        hint = "no hint" if retry_after is None else f"Retry-After {retry_after:g} s"
        super().__init__(f"Toss rate-limited the call ({hint}); the attempt is retried")
        self.retry_after = retry_after


class TossProtocolError(TossError):
    """Toss answered something this client cannot read (a body that does not decrypt or parse);
    the attempt is retried and the payout looked up first."""


class TossRefused(PermanentFailure):
    """Toss refused the payout for good (its code and message say why); the job is
    dead-lettered: fix the seller or the account at Toss, then requeue it."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"Toss refused the payout: {code}: {message} (HTTP {status})")
        self.code = code
        self.provider_message = message
        self.status = status
