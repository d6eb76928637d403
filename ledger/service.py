"""The Ledger service: the one place that orders SQL (the truth) before Redis (the hot queue)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from ledger.db import create_engine
from ledger.request import SettlementRequest
from ledger.settings import Settings
from ledger.store import EnqueueResult, EventStore


@dataclass
class Ledger:
    """Write-side operations on settlement jobs. Build it with ``build_ledger``."""

    settings: Settings
    engine: Engine
    store: EventStore

    def enqueue(
        self,
        request: SettlementRequest,
        *,
        delay: timedelta | None = None,
        max_attempts: int | None = None,
        actor: str = "service",
    ) -> EnqueueResult:
        """Append the ``enqueued`` event (idempotent per key)."""
        return self.store.enqueue(
            request,
            max_attempts=max_attempts or self.settings.default_max_attempts,
            delay=delay,
            actor=actor,
        )

    def close(self) -> None:
        self.engine.dispose()


def build_ledger(settings: Settings) -> Ledger:
    """Wire a ledger from settings (explicitly; no globals)."""
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    return Ledger(settings=settings, engine=engine, store=EventStore(engine))
