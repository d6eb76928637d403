"""The FastAPI application, built from a ``Ledger`` (explicit wiring, no globals)."""

from __future__ import annotations

from fastapi import FastAPI

from ledger.http import errors
from ledger.http.auth import parse_tokens
from ledger.http.routes import health, jobs, settlements
from ledger.service import Ledger


def create_app(ledger: Ledger) -> FastAPI:
    """The API over ``ledger``; tokens come from ``ledger.settings.api_tokens``."""
    app = FastAPI(
        title="Settlement ledger",
        version="0.1.0",
        description="An event-sourced, auditable job ledger for money payouts.",
    )
    app.state.ledger = ledger
    app.state.tokens = parse_tokens(ledger.settings.api_tokens)
    errors.install(app)
    for router in (settlements.router, jobs.router, health.router):
        app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory for ``ledger serve``: settings from LEDGER_* variables."""
    from ledger.service import build_ledger
    from ledger.settings import Settings

    return create_app(build_ledger(Settings()))
