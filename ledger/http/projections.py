"""Projection reads for the API: catch the live tables up first (read-your-writes)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.engine import Engine

from projections.runner import Projector


def fresh_engine(request: Request) -> Engine:
    """The engine, after folding any events the live projections have not seen yet.

    When nothing is new this is one indexed query; concurrent catch-ups are safe
    (the runner checks the checkpoint it moves).
    """
    ledger = request.app.state.ledger
    Projector(ledger.store).catch_up()
    return ledger.engine  # type: ignore[no-any-return]
