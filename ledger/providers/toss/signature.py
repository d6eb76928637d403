"""The signature on ``payout.changed`` and ``seller.changed`` webhooks. Pure: no IO.

Toss (developer community, "웹훅 signature 검증"): HMAC-SHA256 over
``{WEBHOOK_PAYLOAD}:{tosspayments-webhook-transmission-time}`` with the security
key; the ``tosspayments-webhook-signature`` header holds two base64 values after
``v1:``, and the webhook is genuine when either matches. The docs do not say
whether the key is the 64 hex characters or the 32 bytes they encode (the JWE
uses the bytes): both are tried, both derive from the one secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime

from ledger.errors import LedgerError

SIGNATURE_HEADER = "tosspayments-webhook-signature"
TIME_HEADER = "tosspayments-webhook-transmission-time"


class WebhookRefused(LedgerError):
    """The webhook is not verified as Toss's (signature or transmission time); nothing was
    recorded. Toss's own deliveries are signed with the security key: check
    LEDGER_TOSS_SECURITY_KEY."""


def digest(payload: bytes, transmission_time: str, key: bytes) -> bytes:
    """HMAC-SHA256 of ``payload:transmission_time`` under ``key``."""
    return hmac.new(key, payload + b":" + transmission_time.encode(), hashlib.sha256).digest()


def signature_header(payload: bytes, transmission_time: str, keys: list[bytes]) -> str:
    """The header Toss would send (``v1:`` and one base64 value per key; the stub's)."""
    values = [base64.b64encode(digest(payload, transmission_time, key)).decode() for key in keys]
    return "v1:" + ",".join(values)


def signatures(header: str) -> list[bytes]:
    """The decoded values of a signature header (``v1:a,b`` or ``v1:a,v1:b``)."""
    values = []
    for part in header.split(","):
        text = part.strip().removeprefix("v1:").strip()
        try:
            values.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            continue
    return values


def verify(
    payload: bytes,
    header: str | None,
    transmission_time: str | None,
    key: bytes,
    *,
    now: datetime,
    tolerance_seconds: float,
) -> None:
    """``WebhookRefused`` unless the headers prove Toss sent ``payload`` within the window."""
    if not header or not transmission_time:
        raise WebhookRefused(f"missing {SIGNATURE_HEADER} or {TIME_HEADER} header")
    try:
        sent = datetime.fromisoformat(transmission_time.strip())
    except ValueError:
        raise WebhookRefused(f"{TIME_HEADER} is not an ISO 8601 time") from None
    if sent.tzinfo is None:
        raise WebhookRefused(f"{TIME_HEADER} has no UTC offset")
    skew = abs((now - sent).total_seconds())
    if skew > tolerance_seconds:
        raise WebhookRefused(
            f"stale webhook: sent {skew:.0f} s away from our clock (allowed "
            f"{tolerance_seconds:g} s, LEDGER_TOSS_WEBHOOK_TOLERANCE_SECONDS)"
        )
    expected = [
        digest(payload, transmission_time, candidate) for candidate in (key, key.hex().encode())
    ]
    given = signatures(header)
    if not any(hmac.compare_digest(a, b) for a in expected for b in given):
        raise WebhookRefused("webhook signature does not match the security key")
