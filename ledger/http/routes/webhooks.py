"""Webhooks from payment providers: no bearer token (``/api/webhooks/`` is exempt from the
token gate); each provider's signature stands in for it (``ledger.providers.toss.webhooks``).
``GET /api/providers/toss/inbox`` (auditor, operator) lists what Toss sent that an operator
should read: payouts no job claims, mismatches, seller changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledger.events import format_time
from ledger.http.auth import Principal, require
from ledger.http.deps import TossDep
from ledger.http.problems import problem_response
from ledger.http.roles import READERS

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/toss",
    summary="Toss Payments payout.changed / seller.changed",
    responses={
        200: {"description": "Received (or received before: nothing changed)."},
        400: {"description": "Not a payout.changed or seller.changed event."},
        401: {"description": "Signature or transmission time not verified; nothing recorded."},
        404: {"description": "Toss webhooks are not configured on this server."},
        409: {"description": "The payout is not recorded as submitted yet; deliver it later."},
        422: {"description": "JSON the strict parser refuses (a duplicate key, …)."},
    },
)
async def toss(request: Request, receiver: TossDep) -> JSONResponse:
    """Verify a Toss webhook's signature, then record what Toss said (docs/providers/toss.md)."""
    if receiver is None:
        return problem_response(
            404, "Toss webhooks are not configured: set LEDGER_TOSS_SECURITY_KEY"
        )
    body = await request.body()
    reply = await run_in_threadpool(receiver.receive, body, request.headers)
    return JSONResponse(reply.body, reply.status)


inbox_router = APIRouter(prefix="/api/providers/toss", tags=["webhooks"])


@inbox_router.get("/inbox", summary="Toss webhooks an operator should read")
def toss_inbox(
    receiver: TossDep,
    _who: Annotated[Principal, Depends(require(*READERS))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Unknown payouts, mismatches and seller changes Toss sent, newest first (read only)."""
    if receiver is None:
        return []
    return [
        {
            "eventId": entry.event_id,
            "receivedAt": format_time(entry.received_at),
            "eventType": entry.event_type,
            "outcome": entry.outcome,
            "detail": entry.detail,
            "payoutId": entry.payout_id,
            "jobId": entry.job_id,
        }
        for entry in receiver.inbox.for_operators(limit)
    ]
