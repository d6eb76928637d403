"""Every webhook Toss delivered and we verified: the idempotency record and the operators' inbox.

One row per (provider, event id) in ``provider_webhooks`` (migration 0013): a
delivery whose event id is already there changes nothing. What the ledger did
with it is its ``outcome``; the outcomes an operator must look at are
``unknown_payout`` (a payout this ledger cannot tie to a job), ``mismatch`` (a
payout that is not the job's current one) and ``seller`` (a seller's status
changed). Rows are never updated; the log stays the truth about money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ledger.schema import provider_webhooks

#: outcomes an operator should read (``ledger.providers.toss.inbox.for_operators``)
FOR_OPERATORS = ("unknown_payout", "mismatch", "seller")


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One verified delivery and what the ledger did with it."""

    event_id: str
    received_at: datetime
    event_type: str
    outcome: str
    detail: str
    body: str
    payout_id: str | None = None
    job_id: str | None = None


@dataclass
class WebhookInbox:
    """``provider_webhooks`` for one provider."""

    engine: Engine
    provider: str = "toss"

    def seen(self, event_id: str) -> bool:
        """Whether this event was already received (and acted on)."""
        query = sa.select(sa.literal(1)).where(
            provider_webhooks.c.provider == self.provider,
            provider_webhooks.c.event_id == event_id,
        )
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def keep(self, entry: InboxEntry) -> bool:
        """Record ``entry``; ``False`` when its event id was already recorded."""
        row = {
            "provider": self.provider,
            "event_id": entry.event_id,
            "received_at": entry.received_at,
            "event_type": entry.event_type,
            "payout_id": entry.payout_id,
            "job_id": entry.job_id,
            "outcome": entry.outcome,
            "detail": entry.detail,
            "body": entry.body,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(provider_webhooks.insert().values(**row))
        except IntegrityError:
            return False
        return True

    def entries(self, outcomes: tuple[str, ...] = (), limit: int = 100) -> list[InboxEntry]:
        """The latest entries, newest first (only ``outcomes`` when given)."""
        query = sa.select(provider_webhooks).where(provider_webhooks.c.provider == self.provider)
        if outcomes:
            query = query.where(provider_webhooks.c.outcome.in_(outcomes))
        query = query.order_by(provider_webhooks.c.received_at.desc()).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            InboxEntry(
                event_id=row["event_id"],
                received_at=row["received_at"],
                event_type=row["event_type"],
                outcome=row["outcome"],
                detail=row["detail"],
                body=row["body"],
                payout_id=row["payout_id"],
                job_id=row["job_id"],
            )
            for row in rows
        ]

    def for_operators(self, limit: int = 100) -> list[InboxEntry]:
        """What an operator should read: unknown payouts, mismatches, seller changes."""
        return self.entries(FOR_OPERATORS, limit)
