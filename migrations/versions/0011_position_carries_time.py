"""As of T in an index-only walk: the events primary key carries occurred_at (PostgreSQL).

Revision ID: 0011_position_carries_time
Revises: 0010_recovery_checkpoint
Create Date: 2026-12-07

Every as-of read starts with ``LogReader.position_at``: the position before the
first event stamped after T, ``min(position) WHERE occurred_at > T``. PostgreSQL
answers it by walking the primary key from position 1 and reading each row's
time from the heap, so it grew with the log (bench/big_log.py: p50 23 ms at
100,000 events, 143 ms at 1,000,000). With ``occurred_at`` carried in the
primary key's leaf entries (``INCLUDE``) the same walk reads no heap page once
the table is vacuumed (an insert-only table is, by autovacuum's insert
threshold): 67 -> 14 ms and 160 -> 43 ms on 1,000,000 events, for 9 more bytes
per event in the key (21 -> 30 MB). The walk is still linear, and so are its
answers on a log with a backdated row (``verify`` names it): what "as of T"
means there is unchanged.

Rebuilding the primary key holds the table's lock while it is built (about a
second per million events here): run it in a maintenance window on a big log.
SQLite keys ``position`` as the rowid: nothing to change there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_position_carries_time"
down_revision: str | None = "0010_recovery_checkpoint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _replace_key(include: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE events DROP CONSTRAINT pk_events, "
        f"ADD CONSTRAINT pk_events PRIMARY KEY (position){include}"
    )


def upgrade() -> None:
    _replace_key(" INCLUDE (occurred_at)")


def downgrade() -> None:
    _replace_key("")
