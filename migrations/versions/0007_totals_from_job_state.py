"""Settled totals are sums over job_state's completed jobs: settled_totals goes.

Revision ID: 0007_totals_from_job_state
Revises: 0006_identifiers_compare_bytes
Create Date: 2026-11-26

``settled_totals`` kept one row per (UTC day, currency, user, place, mission).
With many users and places nearly every completed job is its own group, so the
table was a second copy of the completed rows of ``job_state``, which already
holds each job's completion time, user, place, mission, amount and currency:
a rebuild of a 1M-event log wrote 282,078 such rows, a quarter of its time.
The totals per user, place or mission (and per day with them) are now summed
from ``job_state``, by a partial index on the completed jobs' ``completed_at``;
``daily_totals`` stays for the per-day query. Both sets, live and scratch,
change alike, and no rebuild is needed: ``job_state`` is already there.

The downgrade builds each ``settled_totals`` again from its set's completed
jobs (exactly what the fold had summed), so the set stays at its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_totals_from_job_state"
down_revision: str | None = "0006_identifiers_compare_bytes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")
COMPLETED = "status = 'completed'"

#: the UTC day of a completion time, as the fold days it
_DAY = {
    "sqlite": "date(completed_at)",  # times are UTC text there
    "postgresql": "CAST(timezone('UTC', completed_at) AS DATE)",
}


def upgrade() -> None:
    for prefix in PREFIXES:
        op.drop_table(f"{prefix}settled_totals")
        table = f"{prefix}job_state"
        op.create_index(
            f"ix_{table}_completed_at",
            table,
            ["completed_at"],
            sqlite_where=sa.text(COMPLETED),
            postgresql_where=sa.text(COMPLETED),
        )


def downgrade() -> None:
    day = _DAY[op.get_bind().dialect.name]
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        op.drop_index(f"ix_{table}_completed_at", table_name=table)
        name = f"{prefix}settled_totals"
        op.create_table(
            name,
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("currency", _identifier(3), nullable=False),
            sa.Column("user_id", _identifier(128), nullable=False),
            sa.Column("place_id", _identifier(128), nullable=False),
            sa.Column("mission_id", _identifier(128), nullable=False),
            sa.Column("jobs", sa.BigInteger(), nullable=False),
            sa.Column("amount", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint(
                "day", "currency", "user_id", "place_id", "mission_id", name=op.f(f"pk_{name}")
            ),
        )
        op.execute(
            f"INSERT INTO {name} (day, currency, user_id, place_id, mission_id, jobs, amount) "
            f"SELECT {day}, currency, user_id, place_id, mission_id, COUNT(*), SUM(amount) "
            f"FROM {table} WHERE {COMPLETED} "
            f"GROUP BY {day}, currency, user_id, place_id, mission_id"
        )


def _identifier(length: int) -> sa.types.TypeEngine[str]:
    """The column type ``0006`` left identifiers with (bytewise on PostgreSQL)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")
