"""The settlement after the queue: submitted, cancelled, reversed and refunded.

Revision ID: 0012_settlement_lifecycle
Revises: 0011_position_carries_time
Create Date: 2026-12-07

* ``events``: ``ck_events_type_known`` allows the four new event types. On
  PostgreSQL the constraint is dropped and added again (``ADD CONSTRAINT``
  checks every row). On SQLite a CHECK cannot be altered, and rebuilding the
  table would drop its append-only and time-guard triggers; widening a CHECK
  changes nothing stored, so the table's SQL text in ``sqlite_schema`` is edited
  in place, as SQLite's documentation describes for such changes
  (https://www.sqlite.org/lang_altertable.html, "making other kinds of table
  schema changes"), with the schema version bumped.
* ``job_state`` (live and scratch): the payment round and its amount, what was
  paid, reversed and refunded, and the provider's reference, fee and status;
  completed jobs have paid their amount. A partial index on the submitted jobs'
  ``due_at`` serves the "overdue" count.
* ``queue_stats``: a ``paid`` bucket per currency, equal to ``completed`` so far.
* ``daily_totals``: ``reversed`` and ``refunded`` beside the paid amount.

The downgrade refuses while the log holds any of the new event types (events
are never deleted); otherwise it restores the old CHECK and drops what was added.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_settlement_lifecycle"
down_revision: str | None = "0011_position_carries_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("", "scratch_")
OLD_TYPES = ("enqueued", "attempted", "failed", "dead_lettered", "requeued", "completed")
NEW_TYPES = ("submitted", "cancelled", "reversed", "refunded")
SUBMITTED = "status = 'submitted'"

_CHECK = re.compile(r"CONSTRAINT ck_events_type_known CHECK \(type IN \([^)]*\)\)")


def _condition(types: Sequence[str]) -> str:
    return "type IN (" + ", ".join(f"'{value}'" for value in types) + ")"


def _set_type_check(types: Sequence[str]) -> None:
    conn = op.get_bind()
    condition = _condition(types)
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE events DROP CONSTRAINT ck_events_type_known")
        op.execute(f"ALTER TABLE events ADD CONSTRAINT ck_events_type_known CHECK ({condition})")
        return
    table_sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).scalar_one()
    new_sql, found = _CHECK.subn(f"CONSTRAINT ck_events_type_known CHECK ({condition})", table_sql)
    if found != 1:
        raise RuntimeError("events: ck_events_type_known not found in the table's SQL")
    schema_version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'events'", (new_sql,)
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(schema_version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _set_type_check(OLD_TYPES + NEW_TYPES)
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        op.add_column(table, sa.Column("round", sa.Integer(), nullable=False, server_default="1"))
        op.add_column(table, sa.Column("round_amount", sa.BigInteger(), nullable=True))
        for name in ("paid", "reversed", "refunded"):
            op.add_column(
                table, sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        op.add_column(table, sa.Column("reference", sa.String(200), nullable=True))
        op.add_column(table, sa.Column("fee", sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column("provider_status", sa.String(64), nullable=True))
        op.execute(f"UPDATE {table} SET paid = amount WHERE status = 'completed'")
        op.create_index(
            f"ix_{table}_submitted_due_at",
            table,
            ["due_at"],
            sqlite_where=sa.text(SUBMITTED),
            postgresql_where=sa.text(SUBMITTED),
        )
        stats = f"{prefix}queue_stats"
        op.execute(
            f"INSERT INTO {stats} (currency, bucket, jobs, amount) "
            f"SELECT currency, 'paid', jobs, amount FROM {stats} WHERE bucket = 'completed'"
        )
        daily = f"{prefix}daily_totals"
        for name in ("reversed", "refunded"):
            op.add_column(
                daily, sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    conn = op.get_bind()
    kinds = ", ".join(f"'{value}'" for value in NEW_TYPES)
    held = conn.exec_driver_sql(f"SELECT count(*) FROM events WHERE type IN ({kinds})").scalar()
    if held:
        raise RuntimeError(
            f"the log holds {held} submitted/cancelled/reversed/refunded events: events are "
            "never deleted, so this ledger cannot go back below 0012_settlement_lifecycle"
        )
    for prefix in PREFIXES:
        table = f"{prefix}job_state"
        op.drop_index(f"ix_{table}_submitted_due_at", table_name=table)
        with op.batch_alter_table(table) as batch:
            for name in (
                "round",
                "round_amount",
                "paid",
                "reversed",
                "refunded",
                "reference",
                "fee",
                "provider_status",
            ):
                batch.drop_column(name)
        op.execute(
            f"DELETE FROM {prefix}queue_stats WHERE bucket IN ('paid', 'reversed', 'refunded')"
        )
        with op.batch_alter_table(f"{prefix}daily_totals") as batch:
            batch.drop_column("reversed")
            batch.drop_column("refunded")
    _set_type_check(OLD_TYPES)
