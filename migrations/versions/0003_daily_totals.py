"""Per-day totals: daily_totals (live + scratch), settled_totals summed per day and currency.

Revision ID: 0003_daily_totals
Revises: 0002_projections
Create Date: 2026-11-26

"Completed totals per day" summed ``settled_totals`` (one row per day, currency,
user, place and mission): a scan of the finest grain for a handful of rows. The
fold now keeps the per-day sums too. Each new table is filled from its set's
``settled_totals`` (exactly its sum), so it stands at the set's checkpoint and
catch-up carries on from there without a rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_daily_totals"
down_revision: str | None = "0002_projections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")


def upgrade() -> None:
    for prefix in PREFIXES:
        name = f"{prefix}daily_totals"
        op.create_table(
            name,
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("currency", sa.String(length=3), nullable=False),
            sa.Column("jobs", sa.BigInteger(), nullable=False),
            sa.Column("amount", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("day", "currency", name=op.f(f"pk_{name}")),
        )
        # fill it from the finest grain, so the live set stays consistent at its checkpoint
        op.execute(
            f"INSERT INTO {name} (day, currency, jobs, amount) "
            f"SELECT day, currency, SUM(jobs), SUM(amount) FROM {prefix}settled_totals "
            "GROUP BY day, currency"
        )


def downgrade() -> None:
    for prefix in PREFIXES:
        op.drop_table(f"{prefix}daily_totals")
