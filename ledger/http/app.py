"""The FastAPI application, built from a ``Ledger`` (explicit wiring, no globals)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger.compose.metrics import Metrics
from ledger.db import create_engine
from ledger.http import console, errors
from ledger.http.auth import TokenGate, parse_tokens
from ledger.http.background import Background
from ledger.http.body import BodyGuard
from ledger.http.console.session import Sessions
from ledger.http.deps import Wiring
from ledger.http.headers import SecurityHeaders, keep_query_values_out_of_the_access_log
from ledger.http.problems import documented
from ledger.http.routes import (
    audit,
    docs,
    health,
    jobs,
    metrics,
    operate,
    queue,
    settle,
    settlements,
    webhooks,
)
from ledger.providers.toss.inbox import WebhookInbox
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.webhooks import TossWebhooks
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings


def create_app(
    ledger: Ledger, *, background: Background | None = None, toss: TossWebhooks | None = None
) -> FastAPI:
    """The API over ``ledger``; tokens come from ``ledger.settings.api_tokens``.

    ``background`` (the embedded default's projector and worker) is started with
    the server and stopped with it; ``toss`` receives ``POST /api/webhooks/toss``.
    """

    url = ledger.settings.audit_database_url
    audit_engine = None if url is None else create_engine(url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background is not None:
            background.start()
        try:
            yield
        finally:
            if background is not None:
                background.stop()
            if audit_engine is not None:
                audit_engine.dispose()

    app = FastAPI(
        title="Settlement ledger",
        version="0.1.0",
        description="An event-sourced, auditable job ledger for money payouts.",
        lifespan=lifespan,
        # the vendored Swagger UI instead (routes/docs.py): nothing from a CDN
        docs_url=None,
        redoc_url=None,
        # a 307 to the client's own Host header helps no one: /api/x/ is simply a 404
        redirect_slashes=False,
    )
    tokens = parse_tokens(ledger.settings.api_tokens)
    registry = background.metrics if background is not None else Metrics()
    registry.watch(ledger)
    # routes get these through ledger.http.deps, never from the state itself
    app.state.wiring = Wiring(
        ledger=ledger,
        metrics=registry,
        tokens=tokens,
        audit_engine=audit_engine,
        toss=toss,
        sessions=Sessions(tokens, open_key=ledger.settings.database_url),
    )
    # the last added runs first: the token is checked before the body is read
    app.add_middleware(BodyGuard, max_bytes=ledger.settings.max_body_bytes)
    app.add_middleware(TokenGate, tokens=tokens)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    for module in (settlements, queue, operate, jobs, settle, audit, metrics):
        app.include_router(module.router, responses=documented(*API_ERRORS))
    app.include_router(webhooks.router, responses=documented(413))
    app.include_router(webhooks.inbox_router, responses=documented(*API_ERRORS))
    app.include_router(health.router, responses=documented(400, 413))
    app.include_router(docs.router)
    console.install(app)
    return app


#: what any route under /api (and /metrics) may answer besides its own codes
API_ERRORS = (400, 401, 403, 413, 422, 503)


def app_from_environment() -> FastAPI:
    """The uvicorn factory for ``ledger serve``: settings from LEDGER_* variables.

    Every server process runs a projection follower (one of them leads and writes:
    ``projections.leader``); on the embedded default (no LEDGER_REDIS_URL) a worker
    runs inside it too when LEDGER_HANDLER names one.
    """
    # the ledger's own lines (job ids, hashed keys) beside uvicorn's access log
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    keep_query_values_out_of_the_access_log()
    settings = Settings()
    ledger = build_ledger(settings)
    embedded = settings.redis_url is None
    background = Background(
        ledger, Metrics(), handler=settings.handler if embedded else None, embedded=embedded
    )
    return create_app(ledger, background=background, toss=toss_webhooks(ledger, TossSettings()))


def toss_webhooks(ledger: Ledger, settings: TossSettings) -> TossWebhooks | None:
    """Toss's webhook receiver for ``ledger``, when the security key is configured."""
    if settings.security_key is None:
        return None
    return TossWebhooks(
        ledger=ledger,
        inbox=WebhookInbox(ledger.engine),
        key=settings.security_bytes(),
        tolerance_seconds=settings.webhook_tolerance_seconds,
        actor=settings.actor,
    )
