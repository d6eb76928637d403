"""job_state indexes only the waiting jobs' due times (the one query that used the index).

Revision ID: 0005_waiting_due_at_index
Revises: 0004_job_state_without_request
Create Date: 2026-11-26

The "delayed" count of the stats (waiting jobs due after now) was served by an
index on ``(status, due_at)`` over every row, and every row of a long log is a
completed job: each write of a job paid for an index entry nobody read. A
partial index over the waiting jobs' ``due_at`` serves the same query and holds
only the jobs that are waiting. Both sets, live and scratch, change alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_waiting_due_at_index"
down_revision: str | None = "0004_job_state_without_request"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")
WAITING = "status = 'waiting'"


def upgrade() -> None:
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        op.drop_index(f"ix_{table}_status_due_at", table_name=table)
        op.create_index(
            f"ix_{table}_waiting_due_at",
            table,
            ["due_at"],
            sqlite_where=sa.text(WAITING),
            postgresql_where=sa.text(WAITING),
        )


def downgrade() -> None:
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        op.drop_index(f"ix_{table}_waiting_due_at", table_name=table)
        op.create_index(f"ix_{table}_status_due_at", table, ["status", "due_at"])
