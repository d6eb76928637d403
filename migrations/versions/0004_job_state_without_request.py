"""job_state without the request: the log holds it, the DLQ view reads it from there.

Revision ID: 0004_job_state_without_request
Revises: 0003_daily_totals
Create Date: 2026-11-26

``job_state`` kept every job's whole request as JSON (more than half of each
row), although only the dead-letter view shows it, and the request never
changes after ``enqueued``. The view now joins the job's ``enqueued`` event
(``UNIQUE(job_id, version)``), so every row, every rebuild and every copy of
the table shrinks. The other columns and the checkpoints stay as they are.

Downgrade puts the column back, filled from each job's ``enqueued`` event: the
stored event data is canonical JSON, and both databases cut the request out of
it as it is written there (SQLite's ``json_extract``, PostgreSQL's ``json``
operator), which is the text the column held.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_job_state_without_request"
down_revision: str | None = "0003_daily_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")


def upgrade() -> None:
    for prefix in PREFIXES:
        # SQLite 3.35+ and PostgreSQL drop a column in place (no table copy)
        op.drop_column(f"{prefix}job_state", "request")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    request = "(data::json -> 'request')::text" if postgres else "json_extract(data, '$.request')"
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("request", sa.Text(), nullable=True))
        op.execute(
            f"UPDATE {table} SET request = (SELECT {request} FROM events "
            f"WHERE events.job_id = {table}.job_id AND events.version = 1)"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("request", existing_type=sa.Text(), nullable=False)
