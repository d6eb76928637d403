"""The operator stream's limits: ``limits_set``.

Revision ID: 0016_limits_set
Revises: 0015_bulk_requested
Create Date: 2026-12-07

``ck_events_type_known`` allows ``limits_set``: an operator's provider rate limit
(attempts started per second in the queue), in the operator stream (job id
``operator``, ``ledger.control``). The CHECK is
widened as 0012 widened it (on SQLite the table's SQL text is edited in place,
so the append-only and time-guard triggers stay). The downgrade refuses while
the log holds an operator event (events are never deleted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op

revision: str = "0016_limits_set"
down_revision: str | None = "0015_bulk_requested"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TYPES = (
    "enqueued",
    "attempted",
    "failed",
    "dead_lettered",
    "requeued",
    "completed",
    "submitted",
    "cancelled",
    "reversed",
    "refunded",
    "paused",
    "resumed",
    "bulk_requested",
)
NEW_TYPES = ("limits_set",)

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


def downgrade() -> None:
    conn = op.get_bind()
    kinds = ", ".join(f"'{value}'" for value in NEW_TYPES)
    held = conn.exec_driver_sql(f"SELECT count(*) FROM events WHERE type IN ({kinds})").scalar()
    if held:
        raise RuntimeError(
            f"the log holds {held} limits_set events: events are never "
            "deleted, so this ledger cannot go back below 0016_limits_set"
        )
    _set_type_check(OLD_TYPES)
