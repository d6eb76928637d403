"""Projection tables: job_state, queue_stats, dlq, idempotency, settled_totals (live + scratch).

Revision ID: 0002_projections
Revises: 0001_events
Create Date: 2026-11-26

Each read model exists twice with the same shape: the live set (no prefix) and the
scratch set (``scratch_``) that rebuilds and as-of replays fill. The definitions
are written out here (not imported from ``projections.schema``) so this revision
stays what it was when later ones change the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_projections"
down_revision: str | None = "0001_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")
CHECKPOINTS = ("live", "scratch")


def _job_state(name: str) -> None:
    op.create_table(
        name,
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("round_attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("place_id", sa.String(length=128), nullable=False),
        sa.Column("mission_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_status_due_at", name, ["status", "due_at"])


def _queue_stats(name: str) -> None:
    op.create_table(
        name,
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "bucket", name=op.f(f"pk_{name}")),
    )


def _dlq(name: str) -> None:
    op.create_table(
        name,
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("failed_reason", sa.Text(), nullable=True),
        sa.Column("dead_letter_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_dead_lettered_at_position", name, ["dead_lettered_at", "position"])


def _idempotency(name: str) -> None:
    op.create_table(
        name,
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f(f"pk_{name}")),
    )


def _settled_totals(name: str) -> None:
    op.create_table(
        name,
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("place_id", sa.String(length=128), nullable=False),
        sa.Column("mission_id", sa.String(length=128), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "currency", "user_id", "place_id", "mission_id", name=op.f(f"pk_{name}")
        ),
    )


TABLES = {
    "job_state": _job_state,
    "queue_stats": _queue_stats,
    "dlq": _dlq,
    "idempotency": _idempotency,
    "settled_totals": _settled_totals,
}


def upgrade() -> None:
    checkpoints = op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projection_checkpoints")),
    )
    for prefix in PREFIXES:
        for table, create in TABLES.items():
            create(prefix + table)
    # one row per table set: the runner locks it and moves it with every batch
    op.bulk_insert(checkpoints, [{"name": name, "position": 0} for name in CHECKPOINTS])


def downgrade() -> None:
    for prefix in PREFIXES:
        for table in TABLES:
            op.drop_table(prefix + table)
    op.drop_table("projection_checkpoints")
