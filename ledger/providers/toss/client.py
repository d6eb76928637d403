"""A synchronous client of the Toss v2 payout API (the worker is threaded; httpx is thread-safe).

* Basic auth with the secret key as user name and no password (``base64(key + ":")``);
* POST bodies as compact JWE (``TossPayments-api-security-mode: ENCRYPTION``,
  ``Content-Type: text/plain``), the answer decrypted with the same key;
* an ``Idempotency-Key`` on every POST;
* timeouts: the docs' 60 s for payout calls (``LEDGER_TOSS_TIMEOUT_SECONDS``);
* connection errors, timeouts and 5xx → ``TossUnavailable`` (retryable); 429 →
  waited in the call when the hint is short, else ``TossRateLimited``; a
  refusal → its code's meaning (``wire.error_kind``): ``TossRefused`` dead-letters.

The keys never reach a log line or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, assert_never

import httpx
import orjson

from ledger import strict_json
from ledger.errors import LedgerError
from ledger.providers.toss import jwe
from ledger.providers.toss.errors import (
    TossProtocolError,
    TossRateLimited,
    TossRefused,
    TossUnavailable,
)
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.wire import ErrorKind, Payout, error_kind, is_failed, payouts_of, said

SECURITY_MODE_HEADER = "TossPayments-api-security-mode"


class TossClient:
    """Calls to /v2/payouts (see the module docstring). Build one per process and share it."""

    def __init__(
        self,
        settings: TossSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.secret_key is None or settings.security_key is None:
            raise LedgerError(
                "Toss needs LEDGER_TOSS_SECRET_KEY and LEDGER_TOSS_SECURITY_KEY "
                "(developer centre, API keys); set both and start the worker again"
            )
        self._key = settings.security_bytes()
        self._max_wait = settings.max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            base_url=settings.api_url,
            auth=httpx.BasicAuth(settings.secret_key.get_secret_value(), ""),
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- the calls -----------------------------------------------------------------

    def request_payout(self, body: list[dict[str, Any]], *, idempotency_key: str) -> Payout:
        """POST /v2/payouts (one payout); the payout Toss accepted."""
        token = jwe.encrypt(orjson.dumps(body), self._key, now=self._clock())
        headers = {
            SECURITY_MODE_HEADER: "ENCRYPTION",
            "Content-Type": "text/plain",
            "Idempotency-Key": idempotency_key,
        }
        return _one(self._send("POST", "/v2/payouts", content=token, headers=headers))

    def find_payout(self, ref_payout_id: str) -> Payout | None:
        """The payout we requested under ``ref_payout_id``, if Toss has one."""
        envelope = self._send("GET", "/v2/payouts", params={"refPayoutId": ref_payout_id})
        found = [payout for payout in _payouts(envelope) if payout.ref_payout_id == ref_payout_id]
        live = [payout for payout in found if not is_failed(payout)]
        chosen = live or found
        return chosen[-1] if chosen else None

    def get_payout(self, payout_id: str) -> Payout:
        """GET /v2/payouts/{id}."""
        return _one(self._send("GET", f"/v2/payouts/{_segment(payout_id)}"))

    def cancel_payout(self, payout_id: str, *, idempotency_key: str) -> Payout:
        """POST /v2/payouts/{id}/cancel (no body, so no ENCRYPTION, as the guide says)."""
        headers = {"Idempotency-Key": idempotency_key}
        path = f"/v2/payouts/{_segment(payout_id)}/cancel"
        return _one(self._send("POST", path, headers=headers))

    # -- the mechanics -------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        for _ in range(2):  # one more try after a short rate-limit hint
            response = self._call(method, path, content=content, headers=headers, params=params)
            if response.status_code == 429:
                wait = _retry_after(response)
                if wait is not None and wait <= self._max_wait:
                    self._sleep(wait)
                    continue
                raise TossRateLimited(wait)
            return self._envelope(response)
        raise TossRateLimited(_retry_after(response))

    def _call(
        self,
        method: str,
        path: str,
        *,
        content: str | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        try:
            return self._http.request(method, path, content=content, headers=headers, params=params)
        except httpx.TimeoutException:
            raise TossUnavailable(
                f"Toss did not answer {method} {path} in time; the payout is looked up "
                "by its refPayoutId before it is requested again"
            ) from None
        except httpx.TransportError as error:
            raise TossUnavailable(
                f"Toss could not be reached for {method} {path} ({type(error).__name__}); "
                "the attempt is retried"
            ) from None

    def _envelope(self, response: httpx.Response) -> dict[str, Any]:
        document = self._document(response)
        if response.is_success:
            return document
        found = document.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else document
        code = said(error["code"])[:64] if isinstance(error.get("code"), str) else None
        message = said(error.get("message") or response.reason_phrase)
        kind = error_kind(response.status_code, code)
        match kind:
            case ErrorKind.PERMANENT:
                status = response.status_code
                raise TossRefused(code or f"HTTP_{status}", message, status)
            case ErrorKind.RATE_LIMITED:
                raise TossRateLimited(_retry_after(response))
            case ErrorKind.RETRYABLE:
                raise TossUnavailable(
                    f"Toss failed the call: {code or response.status_code}: {message}; "
                    "the attempt is retried"
                )
            case _:
                assert_never(kind)

    def _document(self, response: httpx.Response) -> dict[str, Any]:
        """The answer as JSON: decrypted first when Toss sent a JWE."""
        raw = response.content.strip()
        if not raw:
            return {}
        if not raw.startswith(b"{"):
            _, raw = jwe.decrypt(raw, self._key)
        try:
            document = strict_json.loads(raw)
        except LedgerError:
            raise TossProtocolError(
                f"Toss answered HTTP {response.status_code} with a body that is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise TossProtocolError(f"Toss answered HTTP {response.status_code} with no object")
        return document


def _one(envelope: Mapping[str, Any]) -> Payout:
    payouts = _payouts(envelope)
    if len(payouts) != 1:
        raise TossProtocolError(f"Toss answered with {len(payouts)} payouts where one was asked")
    return payouts[0]


def _payouts(envelope: Mapping[str, Any]) -> list[Payout]:
    try:
        return payouts_of(envelope)
    except (ValueError, TypeError) as error:
        raise TossProtocolError(
            f"Toss answered with a payout this client cannot read: {error}"
        ) from None


def _segment(value: str) -> str:
    """A path segment: Toss ids are plain; anything else is refused rather than escaped."""
    if not value or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise TossProtocolError(f"not a Toss payout id: {value[:40]!r}")
    return value


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
