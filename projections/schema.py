"""Projection tables (created by Alembic migrations, never by create_all at start-up).

Every read model exists twice with the same shape: the **live** set that readers
query and the runner keeps caught up, and the **scratch** set that rebuilds,
as-of replays and ``replay --check`` fill from event 0. A full rebuild fills the
scratch set and then swaps it in for the live set in one transaction (the two
sets trade names: ``projections.sql.trade_names``).

Each set has one checkpoint row in ``projection_checkpoints`` (the last position
applied), written in the same transaction as the rows, so a crash never applies
an event twice or skips one.

Sums of amounts are 64-bit integers in minor units (up to 9.2e18 per currency
and bucket).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ledger.lifecycle import JobStatus
from ledger.schema import NAMING_CONVENTION, identifier

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: checkpoint names of the two table sets (rows seeded by the migration)
LIVE_NAME = "live"
SCRATCH_NAME = "scratch"

checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
)


#: the rows of waiting jobs: the condition of ``job_state``'s partial index, written
#: the same way in the queries that must use that index
WAITING_ROWS = sa.text(f"status = '{JobStatus.WAITING.value}'")
#: the rows of completed (settled) jobs: the same for the settled totals' index
COMPLETED_ROWS = sa.text(f"status = '{JobStatus.COMPLETED.value}'")
#: the rows of payouts the provider holds: the same for the overdue count's index
SUBMITTED_ROWS = sa.text(f"status = '{JobStatus.SUBMITTED.value}'")


def _job_state(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("job_id", identifier(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        # position of the job's last event
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("round_attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        # worker of the current attempt
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", identifier(128), nullable=False),
        sa.Column("place_id", identifier(128), nullable=False),
        sa.Column("mission_id", identifier(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", identifier(3), nullable=False),
        sa.Column("idempotency_key", identifier(255), nullable=False),
        # the settlement after the queue (``lifecycle.Job``'s money fields)
        sa.Column("round", sa.Integer, nullable=False, server_default="1"),
        sa.Column("round_amount", sa.BigInteger, nullable=True),
        sa.Column("paid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reversed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("fee", sa.BigInteger, nullable=True),
        sa.Column("provider_status", sa.String(64), nullable=True),
        # "delayed" = waiting with a future due time, counted at query time; only
        # waiting jobs are indexed (most rows of a long log are completed jobs)
        sa.Index(
            f"ix_{name}_waiting_due_at",
            "due_at",
            sqlite_where=WAITING_ROWS,
            postgresql_where=WAITING_ROWS,
        ),
        # settled totals are sums over the completed jobs (``projections.queries.totals``):
        # only they are indexed, by the time they settled
        sa.Index(
            f"ix_{name}_completed_at",
            "completed_at",
            sqlite_where=COMPLETED_ROWS,
            postgresql_where=COMPLETED_ROWS,
        ),
        # "overdue" = submitted and due for confirmation, counted at query time
        sa.Index(
            f"ix_{name}_submitted_due_at",
            "due_at",
            sqlite_where=SUBMITTED_ROWS,
            postgresql_where=SUBMITTED_ROWS,
        ),
    )


def _queue_stats(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("currency", identifier(3), primary_key=True),
        # a job status, or "enqueued" (every job ever enqueued: only ever grows)
        sa.Column("bucket", sa.String(16), primary_key=True),
        sa.Column("jobs", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )


def _dlq(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("job_id", identifier(36), primary_key=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False),
        # position of the dead_lettered event: orders jobs dead-lettered in one transaction
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("failed_reason", sa.Text, nullable=True),
        sa.Column("dead_letter_reason", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index(f"ix_{name}_dead_lettered_at_position", "dead_lettered_at", "position"),
    )


def _daily_totals(name: str) -> sa.Table:
    # the completed jobs' amounts summed per UTC day and currency, kept by the fold:
    # the per-day audit query reads a few rows instead of summing the jobs
    return sa.Table(
        name,
        metadata,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("currency", identifier(3), primary_key=True),
        sa.Column("jobs", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        # what came back of the payouts settled that day
        sa.Column("reversed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    )


@dataclass(frozen=True, slots=True)
class ProjectionTables:
    """One complete set of read-model tables and the name of its checkpoint row."""

    name: str
    job_state: sa.Table
    queue_stats: sa.Table
    dlq: sa.Table
    daily_totals: sa.Table

    @property
    def all(self) -> tuple[sa.Table, ...]:
        """Every table of the set (the order rows are copied in a swap)."""
        return (
            self.job_state,
            self.queue_stats,
            self.dlq,
            self.daily_totals,
        )


def _table_set(name: str, prefix: str) -> ProjectionTables:
    return ProjectionTables(
        name=name,
        job_state=_job_state(f"{prefix}job_state"),
        queue_stats=_queue_stats(f"{prefix}queue_stats"),
        dlq=_dlq(f"{prefix}dlq"),
        daily_totals=_daily_totals(f"{prefix}daily_totals"),
    )


#: what readers query and ``ledger project`` keeps caught up
LIVE = _table_set(LIVE_NAME, "")
#: what rebuilds, as-of replays and ``replay --check`` fill
SCRATCH = _table_set(SCRATCH_NAME, "scratch_")
