"""``LEDGER_TOSS_*``: where Toss is, the two keys, and the time limits the docs ask for."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class TossSettings(BaseSettings):
    """Toss Payments settings. The keys are ``SecretStr``: never printed, never logged."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_TOSS_", extra="ignore")

    api_url: str = Field(
        default="https://api.tosspayments.com", description="Base URL of the Toss API."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Secret key (test_sk_… / live_sk_…): Basic auth user name."
    )
    security_key: SecretStr | None = Field(
        default=None,
        description="Security key (64 hexadecimal characters): JWE key and webhook HMAC key.",
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, description="Read timeout of a call (the docs: up to 60 s a payout)."
    )
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_tolerance_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A webhook whose transmission time is further than this from our clock "
        "is refused as stale (401).",
    )
    max_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A rate-limit hint (Retry-After) up to this long is waited inside the "
        "attempt; a longer one fails the attempt as retryable.",
    )
    actor: str = Field(default="toss", description="Actor recorded on webhook-driven events.")

    @field_validator("security_key")
    @classmethod
    def _hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _HEX64.fullmatch(value.get_secret_value()):
            raise ValueError("LEDGER_TOSS_SECURITY_KEY must be 64 hexadecimal characters")
        return value

    def security_bytes(self) -> bytes:
        """The security key as the 32 bytes JWE and the webhook HMAC use."""
        if self.security_key is None:
            raise ValueError("LEDGER_TOSS_SECURITY_KEY is not set")
        return bytes.fromhex(self.security_key.get_secret_value())
