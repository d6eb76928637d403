"""The events table. Alembic migrations create it; this module only describes it.

``alembic check`` compares these definitions with the migrated database, so the
two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from ledger.events import EventType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def type_known(types: Iterable[str]) -> str:
    """The ``type_known`` CHECK's condition for these event types (a migration writes its own)."""
    quoted = ", ".join(f"'{value}'" for value in types)
    return f"type IN ({quoted})"


#: every ``EventType``, in declaration order. Alembic does not compare CHECK constraints,
#: so a new member needs a migration that recreates ``ck_events_type_known``;
#: tests/integration/test_migrations.py fails until the database allows every member.
TYPE_KNOWN = type_known(event.value for event in EventType)


def identifier(length: int) -> sa.types.TypeEngine[str]:
    """Text compared byte by byte on both backends: ids, keys and codes, never words.

    SQLite compares text with its ``BINARY`` collation. PostgreSQL would use the
    database's collation (``strcoll``), which costs several times more at every
    step down an index on the column, and can order ids unlike SQLite; its "C"
    collation compares bytes. Every column holding a job, user, place or mission
    id, an idempotency key or a currency code is one of these, so the columns
    that are compared with each other (joins) share one collation.
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


#: Positions and hashes: positions are assigned by the appender while it holds the
#: log's write lock, so they follow commit order and have no gaps (see store.py).
events = sa.Table(
    "events",
    metadata,
    sa.Column("position", sa.BigInteger, autoincrement=False),
    sa.Column("job_id", identifier(36), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    # canonical JSON text (sorted keys): the exact bytes the hash covers
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    # set on `enqueued` events only: one key, one job
    sa.Column("idempotency_key", identifier(255), nullable=True),
    # set on `enqueued` events only, for auditors' queries by user/place/mission
    sa.Column("user_id", identifier(128), nullable=True),
    sa.Column("place_id", identifier(128), nullable=True),
    sa.Column("mission_id", identifier(128), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # PostgreSQL: the key's leaf entries carry the time, so "the position as of T"
    # (LogReader.position_at) walks the key alone, no heap page (migration 0011)
    sa.PrimaryKeyConstraint("position", postgresql_include=["occurred_at"]),
    sa.UniqueConstraint("job_id", "version"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    sa.CheckConstraint(TYPE_KNOWN, name="type_known"),
    sa.Index("ix_events_idempotency_key", "idempotency_key", unique=True),
    sa.Index("ix_events_user_id", "user_id"),
    sa.Index("ix_events_place_id", "place_id"),
    sa.Index("ix_events_mission_id", "mission_id"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
    sa.Index("ix_events_type_position", "type", "position"),
)


#: The relay's recovery checkpoint (one row, ``relay``): the log position up to which
#: ``recovery_live_jobs`` lists every job Redis must hold (waiting or in flight). A
#: worker's start-up recovery reads those jobs and the log after that position, not
#: the whole log (``ledger.relay``). Position 0: no checkpoint yet.
recovery_checkpoint = sa.Table(
    "recovery_checkpoint",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

recovery_live_jobs = sa.Table(
    "recovery_live_jobs",
    metadata,
    sa.Column("job_id", identifier(36), primary_key=True),
)


#: Webhooks a payment provider delivered and the ledger verified (migration 0013): the
#: idempotency record (one row per provider event id) and the operators' inbox of what
#: could not be tied to a job, or was only for their eyes (``ledger.providers.toss.inbox``).
provider_webhooks = sa.Table(
    "provider_webhooks",
    metadata,
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("event_id", identifier(200), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("payout_id", identifier(200), nullable=True),
    sa.Column("job_id", identifier(36), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("provider", "event_id"),
    sa.Index("ix_provider_webhooks_outcome", "outcome"),
)
