"""The queue's controls over HTTP: ``GET /api/queue/controls``, ``POST /api/queue/pause``
and ``POST /api/queue/resume`` (operator); bulk cancel and requeue by filter,
``POST /api/queue/bulk/preview`` then ``POST /api/queue/bulk`` with its token
(``ledger.compose.bulk``).

Each change is an event of the operator stream with the caller's role and the
reason; asking for the state the queue already has appends nothing
(``appended: false``), so a retried request is harmless.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ledger.compose.bulk import BulkAction, execute, preview
from ledger.http.auth import READERS, Principal, Role, require
from ledger.http.deps import LedgerDep
from ledger.http.problems import documented
from ledger.request import CurrencyCode, Identifier, Reason
from projections.listing import JobFilter

router = APIRouter(prefix="/api/queue", tags=["queue"])

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Reader = Annotated[Principal, Depends(require(*READERS))]


class Why(BaseModel):
    """Why (recorded in the log with the operator)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: Reason


@router.get("/controls")
def controls(ledger: LedgerDep, _who: Reader) -> dict[str, Any]:
    """Whether the queue is paused, since when, by whom and why (from the log)."""
    return ledger.controls().as_api()


@router.post("/pause")
def pause(body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Pause the queue: workers stop claiming (running jobs finish); enqueues go on."""
    return ledger.pause(actor=f"http:{who.name}", reason=body.reason).as_api()


@router.post("/resume")
def resume(body: Why, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Resume a paused queue."""
    return ledger.resume(actor=f"http:{who.name}", reason=body.reason).as_api()


class Limits(Why):
    """The queue's provider rate limit: most attempts started per second (0: no limit)."""

    attempts_per_second: StrictInt = Field(alias="attemptsPerSecond", ge=0, le=1_000_000)


@router.post("/limits")
def limits(body: Limits, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Set the provider rate limit, enforced by the claim script across every worker."""
    return ledger.set_limits(
        rate=body.attempts_per_second, actor=f"http:{who.name}", reason=body.reason
    ).as_api()


class Selection(BaseModel):
    """Which jobs a bulk action takes (every field given must match)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: Literal["dead", "waiting"] = "dead"
    user_id: Identifier | None = Field(default=None, alias="userId")
    place_id: Identifier | None = Field(default=None, alias="placeId")
    mission_id: Identifier | None = Field(default=None, alias="missionId")
    currency: CurrencyCode | None = None
    min_amount: StrictInt | None = Field(default=None, alias="minAmount", ge=0)
    max_amount: StrictInt | None = Field(default=None, alias="maxAmount", ge=0)
    reason_contains: Reason | None = Field(default=None, alias="reasonContains")
    changed_from: AwareDatetime | None = Field(default=None, alias="changedFrom")
    changed_to: AwareDatetime | None = Field(default=None, alias="changedTo")

    def job_filter(self) -> JobFilter:
        return JobFilter(
            status=self.status,
            user_id=self.user_id,
            place_id=self.place_id,
            mission_id=self.mission_id,
            currency=self.currency,
            min_amount=self.min_amount,
            max_amount=self.max_amount,
            reason_contains=self.reason_contains,
            changed_from=self.changed_from,
            changed_to=self.changed_to,
        )


class BulkPreviewBody(BaseModel):
    """A bulk action to preview."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Annotated[BulkAction, Field(strict=False)]
    filter: Selection = Field(default_factory=Selection)


class BulkBody(BulkPreviewBody):
    """A previewed bulk action to run: the preview's token, and why."""

    token: Annotated[StrictStr, Field(min_length=32, max_length=32, pattern="^[0-9a-f]+$")]
    reason: Reason


@router.post("/bulk/preview")
def bulk_preview(body: BulkPreviewBody, ledger: LedgerDep, _who: Operator) -> dict[str, Any]:
    """What a bulk cancel or requeue would take: the count and amount per currency, and
    the token that confirms this set (a read: nothing is written)."""
    return preview(ledger, body.action, body.filter.job_filter()).as_api()


@router.post("/bulk", responses=documented(409))
def bulk(body: BulkBody, ledger: LedgerDep, who: Operator) -> dict[str, Any]:
    """Run a previewed bulk action. 409 when the filter selects another set than the
    token's; the same token again resumes it (jobs done before are not touched again)."""
    result = execute(
        ledger,
        body.action,
        body.filter.job_filter(),
        body.token,
        actor=f"http:{who.name}",
        reason=body.reason,
    )
    return result.as_api()
