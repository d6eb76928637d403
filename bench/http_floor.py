"""The HTTP floor: ``POST /api/settlements`` with nothing behind it (a bench-only app).

The same request model (``WireSettlement``), the same bearer check (``TokenGate``
and the route's ``require(Role.SERVICE)``), the same body cap, security headers
and error handlers as ``ledger serve``, under the same uvicorn settings; the
route validates the body and answers what the real route answers, without a
ledger. What ``POST /api/settlements`` costs above this is the ledger's share.

    python -m uvicorn bench.http_floor:create_floor --factory --workers 2 --port 8001

Tokens come from ``LEDGER_API_TOKENS``, as for the server.
"""

from __future__ import annotations

import os
import uuid
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, status

from ledger.http import deps, errors
from ledger.http.auth import TokenGate, require
from ledger.http.body import BodyGuard
from ledger.http.headers import SecurityHeaders
from ledger.http.roles import Principal, Role, parse_tokens
from ledger.request import WireSettlement
from ledger.settings import Settings


def create_floor() -> FastAPI:
    """The validation-only app (uvicorn factory)."""
    tokens = parse_tokens(os.environ.get("LEDGER_API_TOKENS"))
    app = FastAPI(title="HTTP floor", docs_url=None, redoc_url=None, redirect_slashes=False)
    app.dependency_overrides[deps.tokens] = lambda: tokens
    app.add_middleware(BodyGuard, max_bytes=Settings().max_body_bytes)
    app.add_middleware(TokenGate, tokens=tokens)
    app.add_middleware(SecurityHeaders)
    errors.install(app)

    @app.post("/api/settlements", status_code=status.HTTP_201_CREATED)
    def enqueue_settlement(
        body: Annotated[WireSettlement, Body()],
        who: Annotated[Principal, Depends(require(Role.SERVICE))],
    ) -> dict[str, Any]:
        return {"jobId": str(uuid.uuid4()), "created": True, "queued": True}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
