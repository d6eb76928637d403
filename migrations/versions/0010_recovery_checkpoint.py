"""The relay's recovery checkpoint: worker start-up no longer walks the whole log.

Revision ID: 0010_recovery_checkpoint
Revises: 0009_event_time_guard
Create Date: 2026-12-07

``recovery_checkpoint`` holds one row (``relay``): a log position P, and
``recovery_live_jobs`` the jobs that Redis had to hold (waiting or in flight)
as of P. A recovery reads those jobs' last events and the log after P, pushes
what is live, and moves the checkpoint to the head it read up to; only the
first one (P = 0) walks the whole log. The log stays the truth: dropping both
tables (or setting P to 0) costs one full walk, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_recovery_checkpoint"
down_revision: str | None = "0009_event_time_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _job_id() -> sa.types.TypeEngine[str]:
    return sa.String(36).with_variant(sa.String(36, collation="C"), "postgresql")


def upgrade() -> None:
    checkpoint = op.create_table(
        "recovery_checkpoint",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_recovery_checkpoint"),
    )
    op.create_table(
        "recovery_live_jobs",
        sa.Column("job_id", _job_id(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_recovery_live_jobs"),
    )
    op.bulk_insert(checkpoint, [{"name": "relay", "position": 0}])


def downgrade() -> None:
    op.drop_table("recovery_live_jobs")
    op.drop_table("recovery_checkpoint")
