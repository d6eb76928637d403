"""The settlement after the queue, for operators: cancel, reverse, refund, repay.

Each appends one event with the operator's name and reason, or refuses with a
problem and appends nothing: 404 (no such job), 409 (the job's state does not
allow it: the message says which states do; a worker holds it, naming the
attempt; the provider refused), 422 (a bad amount, more than the payee kept).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ledger.handler import load_handler, provider_call
from ledger.http.auth import Principal, require
from ledger.http.deps import LedgerDep
from ledger.http.problems import documented
from ledger.http.roles import Role
from ledger.http.routes.jobs import JobId
from ledger.money import MAX_AMOUNT
from ledger.provider import MAX_REFERENCE_LENGTH
from ledger.request import IDENTIFIER_DESCRIPTION, CurrencyCode, IdempotencyKey, Reason
from ledger.service import Ledger
from ledger.settling import ProviderCancel
from ledger.text import identifier_text

router = APIRouter(prefix="/api/jobs", tags=["settlement"])

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Amount = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT, description="Minor units.")]
ProviderReference = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_REFERENCE_LENGTH, description=IDENTIFIER_DESCRIPTION),
    AfterValidator(identifier_text),
]


class Why(BaseModel):
    """Why (recorded in the log with the operator)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Reason


class Reversal(Why):
    """Money the provider returned: how much, why, and its reference (idempotency)."""

    amount: Amount
    currency: CurrencyCode | None = None
    reference: ProviderReference | None = None


class Refund(Why):
    """Money the payee gave back: how much, why, and your idempotency key."""

    amount: Amount
    currency: CurrencyCode | None = None
    key: IdempotencyKey | None = None


@router.post("/{job_id}/cancel", responses=documented(404, 409))
def cancel(job_id: JobId, body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Cancel a job before it is paid (waiting, delayed, failed or dead-lettered; a
    submitted payout through the provider's cancellation). 409 while a worker holds it."""
    return ledger.cancel(
        job_id,
        actor=f"http:{who.name}",
        reason=body.reason,
        provider_cancel=_provider_cancel(ledger),
    ).as_api()


@router.post("/{job_id}/reverse", responses=documented(404, 409))
def reverse(job_id: JobId, body: Reversal, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Record that the provider returned money of a completed payout."""
    return ledger.reverse(
        job_id,
        body.amount,
        reason=body.reason,
        actor=f"http:{who.name}",
        reference=body.reference,
        currency=body.currency,
    ).as_api()


@router.post("/{job_id}/refund", responses=documented(404, 409))
def refund(job_id: JobId, body: Refund, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Record that the payee gave money of a completed payout back (partial allowed)."""
    return ledger.refund(
        job_id,
        body.amount,
        reason=body.reason,
        actor=f"http:{who.name}",
        key=body.key,
        currency=body.currency,
    ).as_api()


@router.post("/{job_id}/repay", responses=documented(404, 409))
def repay(job_id: JobId, body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Queue a new payment round of what reversals took back."""
    return ledger.repay(job_id, actor=f"http:{who.name}", reason=body.reason).as_api()


def _provider_cancel(ledger: Ledger) -> ProviderCancel | None:
    spec = ledger.settings.handler
    return provider_call(load_handler(spec), "cancel") if spec else None
