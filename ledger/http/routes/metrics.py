"""``GET /metrics``: Prometheus text."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from ledger.compose.metrics import CONTENT_TYPE
from ledger.http.auth import READERS, Principal, require
from ledger.http.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(
    registry: MetricsDep, _who: Annotated[Principal, Depends(require(*READERS))]
) -> Response:
    """Queue depths, jobs by state, attempt latency histogram, projection and queue lag."""
    return Response(registry.render(), media_type=CONTENT_TYPE)
