"""The documented shapes of a Toss v2 payout, read and written. Pure: no IO.

A payout request (POST /v2/payouts, a JSON array, JWE-encrypted)::

    [{"refPayoutId": …, "destination": "seller_…", "scheduleType": "EXPRESS",
      "amount": {"currency": "KRW", "value": 500},
      "transactionDescription": …, "metadata": {…}}]

Responses and errors are wrapped as ``{"version", "traceId", "entityType",
"entityBody", "error": {"code", "message"}}``. docs/providers/toss.md records
which page each field comes from and what was chosen where the docs are silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure
from ledger.provider import ProviderResult

#: the settlement metadata field naming the payee's Toss seller id
SELLER_FIELD = "tossSellerId"
#: the payout metadata field carrying our job id (the webhook names the job by it)
JOB_FIELD = "ledgerJobId"
#: the docs: "현재는 KRW만 지원합니다" (balances and payouts)
CURRENCY = "KRW"
#: what the payee's bank statement shows (chosen: the docs excerpts give no rule)
DESCRIPTION = "정산"

#: the statuses a payout waits in (any status not known here is waited on too)
PENDING_STATUSES = frozenset({"REQUESTED", "IN_PROGRESS"})
COMPLETED_STATUS = "COMPLETED"
FAILED_STATUS = "FAILED"
CANCELED_STATUS = "CANCELED"


class ErrorKind(Enum):
    """What an error code means for the attempt."""

    PERMANENT = "permanent"
    RETRYABLE = "retryable"
    RATE_LIMITED = "rate-limited"


#: the error codes the pages we read name, and what they mean for an attempt; any other code
#: goes by its HTTP status (``error_kind``). docs/providers/toss.md has the sources.
ERROR_CODES: dict[str, ErrorKind] = {
    # techchat: the seller needs KYC; payouts only to PARTIALLY_APPROVED or APPROVED sellers
    "FORBIDDEN_SELLER_PAYOUT": ErrorKind.PERMANENT,
    # the error-codes page
    "INVALID_REQUEST": ErrorKind.PERMANENT,
    "INVALID_API_KEY": ErrorKind.PERMANENT,
    "NOT_FOUND": ErrorKind.PERMANENT,
    # the error-codes page: "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요."
    "PROVIDER_ERROR": ErrorKind.RETRYABLE,
    "COMMON_ERROR": ErrorKind.RETRYABLE,
}


def error_kind(status: int, code: str | None) -> ErrorKind:
    """A refused call's meaning: the code's if it is mapped, else by HTTP status
    (429 rate-limited, 5xx retryable, any other 4xx permanent)."""
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.RETRYABLE
    return ErrorKind.PERMANENT


@dataclass(frozen=True, slots=True)
class Payout:
    """The fields of a Toss payout object this ledger reads."""

    id: str
    ref_payout_id: str
    status: str
    value: int
    currency: str
    job_id: str | None
    error_code: str | None = None
    error_message: str | None = None


def seller_of(job: ClaimedJob) -> str:
    """The payee's Toss seller id; ``PermanentFailure`` (before any call) if the settlement
    does not name one, or pays in a currency Toss does not pay out."""
    seller = job.request.metadata.get(SELLER_FIELD)
    if not isinstance(seller, str) or not seller.strip():
        raise PermanentFailure(
            f"settlement has no metadata.{SELLER_FIELD}: register the payee as a Toss seller "
            "and enqueue with its seller id (nothing was sent to Toss)"
        )
    if job.request.currency != CURRENCY:
        raise PermanentFailure(
            f"Toss pays out in {CURRENCY} only, not {job.request.currency} "
            "(nothing was sent to Toss)"
        )
    return seller


def ref_payout_id(provider_key: str, number: int) -> str:
    """Our id for the ``number``-th payout of a payment round: the round's provider key,
    then ``KEY:retry-N`` after Toss failed the earlier ones."""
    return provider_key if number <= 1 else f"{provider_key}:retry-{number}"


def payout_request(job: ClaimedJob, seller: str, ref: str) -> list[dict[str, Any]]:
    """The body of POST /v2/payouts for this attempt (one payout)."""
    return [
        {
            "refPayoutId": ref,
            "destination": seller,
            "scheduleType": "EXPRESS",
            "amount": {"currency": CURRENCY, "value": job.amount},
            "transactionDescription": DESCRIPTION,
            "metadata": {JOB_FIELD: job.id, "ledgerRound": str(job.round)},
        }
    ]


def read_payout(entity: Mapping[str, Any]) -> Payout:
    """A payout object; ``ValueError`` naming what is missing."""
    amount = entity.get("amount")
    metadata = entity.get("metadata") or {}
    error = entity.get("error") or {}
    if not isinstance(amount, Mapping) or not isinstance(metadata, Mapping):
        raise ValueError("a payout without amount or with metadata that is not an object")
    fields = (entity.get("id"), entity.get("refPayoutId"), entity.get("status"))
    if not all(isinstance(field, str) and field for field in fields):
        raise ValueError("a payout without id, refPayoutId or status")
    job_id = metadata.get(JOB_FIELD)
    return Payout(
        id=str(entity["id"]),
        ref_payout_id=str(entity["refPayoutId"]),
        status=str(entity["status"]),
        value=int(amount.get("value", 0)),
        currency=str(amount.get("currency", "")),
        job_id=job_id if isinstance(job_id, str) else None,
        error_code=error.get("code") if isinstance(error, Mapping) else None,
        error_message=error.get("message") if isinstance(error, Mapping) else None,
    )


def payouts_of(envelope: Mapping[str, Any]) -> list[Payout]:
    """The payouts in a response's ``entityBody`` (an object with ``items``, a list, or one)."""
    body = envelope.get("entityBody")
    if isinstance(body, Mapping) and isinstance(body.get("items"), list):
        items: list[Any] = body["items"]
    elif isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        items = [body]
    else:
        raise ValueError("a response without entityBody")
    return [read_payout(item) for item in items]


def is_failed(payout: Payout) -> bool:
    """Toss will not pay this payout: a new one may be requested."""
    return payout.status in (FAILED_STATUS, CANCELED_STATUS)


def result_of(payout: Payout) -> ProviderResult:
    """A live or completed payout as the ledger's result: paid only when COMPLETED, pending
    otherwise (REQUESTED, IN_PROGRESS, and any status this client does not know)."""
    return ProviderResult(
        reference=payout.id,
        status=payout.status[:64],
        pending=payout.status != COMPLETED_STATUS,
    )


#: the most of Toss's own words a recorded reason carries
MAX_MESSAGE = 300


def said(text: object) -> str:
    """Toss's text as we record it: printable, at most ``MAX_MESSAGE`` characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return printable[:MAX_MESSAGE]


def failure_reason(payout: Payout) -> str:
    """Why Toss failed a payout, as the ledger records it."""
    code = said(payout.error_code or payout.status)[:64]
    message = said(payout.error_message or "no message")
    return f"Toss {said(payout.status)[:32].lower()} payout {payout.id}: {code}: {message}"
