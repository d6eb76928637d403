"""The events table. Alembic migrations create it; this module only describes it.

``alembic check`` compares these definitions with the migrated database, so the
two cannot drift.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: Positions and hashes: positions are assigned by the appender while it holds the
#: log's write lock, so they follow commit order and have no gaps (see store.py).
events = sa.Table(
    "events",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    # canonical JSON text (sorted keys): the exact bytes the hash covers
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    # set on `enqueued` events only: one key, one job
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    # set on `enqueued` events only, for auditors' queries by user/place/mission
    sa.Column("user_id", sa.String(128), nullable=True),
    sa.Column("place_id", sa.String(128), nullable=True),
    sa.Column("mission_id", sa.String(128), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("job_id", "version"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    sa.CheckConstraint(
        "type IN ('enqueued', 'attempted', 'failed', 'dead_lettered', 'requeued', 'completed')",
        name="type_known",
    ),
    sa.Index("ix_events_idempotency_key", "idempotency_key", unique=True),
    sa.Index("ix_events_user_id", "user_id"),
    sa.Index("ix_events_place_id", "place_id"),
    sa.Index("ix_events_mission_id", "mission_id"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
    sa.Index("ix_events_type_position", "type", "position"),
)
