"""Provider webhooks: the idempotency record and the operators' inbox.

Revision ID: 0013_provider_webhooks
Revises: 0012_settlement_lifecycle
Create Date: 2026-12-07

One row per verified webhook delivery, keyed by (provider, event id): a second
delivery of the same event finds its row and changes nothing. Unknown payouts,
mismatches and seller changes stay here for an operator (docs/providers/toss.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_provider_webhooks"
down_revision: str | None = "0012_settlement_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "provider_webhooks",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_id", _identifier(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payout_id", _identifier(200), nullable=True),
        sa.Column("job_id", _identifier(36), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name="pk_provider_webhooks"),
    )
    op.create_index("ix_provider_webhooks_outcome", "provider_webhooks", ["outcome"])


def downgrade() -> None:
    op.drop_index("ix_provider_webhooks_outcome", table_name="provider_webhooks")
    op.drop_table("provider_webhooks")
