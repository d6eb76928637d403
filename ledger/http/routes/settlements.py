"""``POST /api/settlements``: the scan-verify integration point."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response, status

from ledger.http.auth import Principal, Role, require
from ledger.http.deps import LedgerDep
from ledger.http.problems import documented
from ledger.request import WireSettlement

router = APIRouter(prefix="/api", tags=["settlements"])
log = logging.getLogger("ledger.http")


@router.post(
    "/settlements",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "the same key and body were seen before: the existing job"},
        **documented(409),
    },
)
def enqueue_settlement(
    ledger: LedgerDep,
    response: Response,
    body: Annotated[WireSettlement, Body()],
    who: Annotated[Principal, Depends(require(Role.SERVICE))],
) -> dict[str, Any]:
    """Enqueue one settlement, idempotently per ``idempotencyKey``.

    ``queued: false`` means the job is saved in the ledger but Redis refused it
    for now; the queue takes it when Redis is back. It is not a failure: do not
    send it again under a new key.
    """
    result = ledger.enqueue(body, actor=f"http:{who.name}")
    if not result.created:
        response.status_code = status.HTTP_200_OK
    log.info(
        "settlement job=%s created=%s queued=%s key_sha256=%s",
        result.job_id,
        result.created,
        result.queued,
        hashlib.sha256(body.idempotency_key.encode()).hexdigest()[:16],
    )
    return {"jobId": result.job_id, "created": result.created, "queued": result.queued}
