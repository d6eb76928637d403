"""Idempotency state is read from the log and job_state: the idempotency table goes.

Revision ID: 0008_idempotency_from_the_log
Revises: 0007_totals_from_job_state
Create Date: 2026-11-27

``idempotency`` kept one row per key: the job, the request's fingerprint and
the time the key was first seen. All three are in the key's ``enqueued`` event,
which the log finds by its own unique index on the key, and none of them ever
changes; the job's current state is ``job_state``'s. So the table was a third
copy of one row per job, and a rebuild of a 1M-event log wrote 303,153 rows
into it. ``projections.queries.idempotency`` now joins the key's event with
``job_state``, as the DLQ view and ``job()`` already join the request.

The downgrade builds each set's table again from the ``enqueued`` events of the
jobs that set holds, so the set stays at its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_idempotency_from_the_log"
down_revision: str | None = "0007_totals_from_job_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")

#: the request's fingerprint in an event's JSON text
_FINGERPRINT = {
    "sqlite": "json_extract(e.data, '$.fingerprint')",
    "postgresql": "CAST(e.data AS JSONB) ->> 'fingerprint'",
}


def upgrade() -> None:
    for prefix in PREFIXES:
        op.drop_table(f"{prefix}idempotency")


def downgrade() -> None:
    fingerprint = _FINGERPRINT[op.get_bind().dialect.name]
    for prefix in PREFIXES:
        name = f"{prefix}idempotency"
        op.create_table(
            name,
            sa.Column("idempotency_key", _identifier(255), nullable=False),
            sa.Column("job_id", _identifier(36), nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("idempotency_key", name=op.f(f"pk_{name}")),
        )
        op.execute(
            f"INSERT INTO {name} (idempotency_key, job_id, fingerprint, first_seen_at) "
            f"SELECT e.idempotency_key, e.job_id, {fingerprint}, e.occurred_at "
            f"FROM events e JOIN {prefix}job_state j ON j.job_id = e.job_id "
            "WHERE e.version = 1"
        )


def _identifier(length: int) -> sa.types.TypeEngine[str]:
    """The column type ``0006`` left identifiers with (bytewise on PostgreSQL)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")
