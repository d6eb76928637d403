"""Configuration from the environment (``LEDGER_*``), read once and passed in."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.business_time import business_zone

DEFAULT_DATABASE_URL = "sqlite:///./ledger.db"


class Settings(BaseSettings):
    """Every ``LEDGER_*`` variable the ledger reads. Build one and pass it in."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the event log (SQLite file or PostgreSQL).",
    )
    audit_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a streaming replica of the log for auditors' reads "
        "(history, events, stats as of, verify, reconcile, checkpoint); unset: the primary.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL of the hot queue; unset means in-process fakeredis.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="Run the hot queue on Redis Cluster; LEDGER_REDIS_URL names any node "
        "(the client learns the rest). One queue lives on one slot: the cluster gives "
        "availability and room beside other users, not one queue's throughput.",
    )
    queue_name: str = Field(default="settlements", description="Name of the hot queue.")
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL",
        description="SQLite `synchronous` pragma; FULL survives power loss, NORMAL only crashes.",
    )
    default_max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    api_tokens: str | None = Field(
        default=None,
        description="Bearer tokens: role:token pairs (auditor, operator, service).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest HTTP request body accepted (bytes); larger ones get 413 unread.",
    )
    checkpoint_key: SecretStr | None = Field(
        default=None,
        description="Secret key (16+ characters) that signs and checks chain-head checkpoints.",
    )
    payload_ttl_seconds: int = Field(
        default=86_400, ge=1, description="TTL of a job's payload cache entry in Redis."
    )
    sweep_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a worker reaps expired leases and relays the log into Redis.",
    )
    relay_grace_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a log change may stay unseen in Redis before the sweep pushes it.",
    )
    business_timezone: str = Field(
        default="UTC",
        description="IANA time zone the business closes its days and months in (reconcile "
        "periods, as-of days, times typed without an offset), e.g. Asia/Seoul.",
    )
    db_lock_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        description="PostgreSQL: longest wait of an append for the append lock, then it fails "
        "with a clear error and is retried (0: no limit).",
    )
    db_statement_timeout_seconds: float = Field(
        default=15.0,
        ge=0,
        description="PostgreSQL: longest run of one statement of an append, the lock wait "
        "included (0: no limit).",
    )
    db_idle_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="PostgreSQL: an append transaction idle this long (its writer stopped) is "
        "ended by the server, freeing the append lock for every other writer (0: no limit).",
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="SQLite: longest wait for the single write lock, then a clear error.",
    )
    confirm_within_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A payout the provider accepted (submitted) and has not confirmed this long "
        "is overdue: workers look it up through the handler's provider (`handler.poll`).",
    )
    poll_every_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a worker looks up an overdue submitted payout again.",
    )
    handler: str | None = Field(
        default=None,
        description="Job handler (module:callable) `ledger serve` runs on the embedded default.",
    )

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        business_zone(value)
        return value

    @property
    def audit_url(self) -> str:
        """Where auditors read: ``LEDGER_AUDIT_DATABASE_URL``, else the log itself."""
        return self.audit_database_url or self.database_url

    @property
    def business_zone(self) -> ZoneInfo:
        """``business_timezone`` as a zone."""
        return business_zone(self.business_timezone)
