"""A faithful stub of Toss's v2 payouts, for the tests and ``ledger demo --provider toss-stub``.

The state and its switches; ``stub_app`` serves it over HTTP (the documented
paths, Basic auth, JWE bodies, the error envelope) and ``stub_server`` runs it
on a loopback port. Webhooks (``payout.changed``, ``seller.changed``) are
signed as Toss signs them and handed to ``deliver`` (a callable posting them
to the ledger); a delivery that is not answered 2xx is kept and redelivered by
``redeliver`` (Toss retries up to 7 times over 3 days 19 hours).

Switches (``Switches``) inject what a real Toss does on a bad day: calls that
hang (before or after the payout is accepted), bursts of 5xx, 429 with a
Retry-After hint, permanent refusals per seller, duplicate and out-of-order
webhooks, and webhooks with a bad signature. ``double_payments`` counts the
payment rounds Toss paid more than once: the number the tests hold at 0.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.providers.toss.signature import SIGNATURE_HEADER, TIME_HEADER, signature_header
from ledger.providers.toss.wire import JOB_FIELD

API_VERSION = "2022-11-16"
#: posts a signed webhook (body, headers) to the ledger; returns the HTTP status it got
Deliver = Callable[[bytes, dict[str, str]], int]


@dataclass
class Switches:
    """Faults to inject; each counter is used up one call at a time."""

    #: the next N payout requests hang before Toss records them (the client times out)
    hang_before_accept: int = 0
    #: the next N payout requests are accepted, then hang (timeout after acceptance)
    hang_after_accept: int = 0
    #: the next N calls of any kind answer 500
    server_errors: int = 0
    #: the next N calls of any kind answer 429 with ``retry_after``
    rate_limits: int = 0
    retry_after: float = 0.0
    #: seller id → (HTTP status, code, message): every payout to it is refused
    refused_sellers: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    #: accepted payouts complete at once (the answer already says COMPLETED)
    complete_on_accept: bool = False
    #: each webhook is delivered this many times
    webhook_copies: int = 1
    #: webhooks are signed with a wrong key
    bad_signature: bool = False
    #: when a payout completes at acceptance, its webhook goes out before the answer does
    webhook_before_answer: bool = False


@dataclass
class StubToss:
    """Toss's payouts as the stub keeps them (thread-safe)."""

    secret_key: str
    security_key: bytes
    deliver: Deliver | None = None
    switches: Switches = field(default_factory=Switches)
    #: how long a hanging call hangs (longer than the client's timeout in a test)
    hang_seconds: float = 2.0
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Idempotency-Key → the answer first given under it
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    undelivered: list[tuple[bytes, str]] = field(default_factory=list)
    delivered: list[tuple[bytes, int]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- switches, one use at a time ------------------------------------------------------

    def take(self, name: str) -> bool:
        """Use one count of switch ``name`` if any is left."""
        with self._lock:
            left: int = getattr(self.switches, name)
            if left <= 0:
                return False
            setattr(self.switches, name, left - 1)
            return True

    # -- payouts -------------------------------------------------------------------------

    def create(self, item: dict[str, Any]) -> dict[str, Any]:
        """Record an accepted payout (REQUESTED) and return it."""
        now = _now()
        payout = {
            "id": "FPA_" + uuid.uuid4().hex[:24],
            "refPayoutId": item["refPayoutId"],
            "destination": item["destination"],
            "scheduleType": item["scheduleType"],
            "payoutDate": now[:10],
            "amount": dict(item["amount"]),
            "transactionDescription": item.get("transactionDescription", ""),
            "requestedAt": now,
            "completedAt": None,
            "status": "REQUESTED",
            "error": None,
            "metadata": dict(item.get("metadata") or {}),
        }
        with self._lock:
            self.payouts[payout["id"]] = payout
        return payout

    def by_ref(self, ref: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self.payouts.values() if p["refPayoutId"] == ref]

    def get(self, payout_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.payouts.get(payout_id)
            return None if found is None else dict(found)

    def live_ref(self, ref: str) -> bool:
        """Toss already holds a payout under ``ref`` that is not failed or cancelled."""
        return any(p["status"] not in ("FAILED", "CANCELED") for p in self.by_ref(ref))

    def complete(self, payout_id: str) -> None:
        """Toss paid the payout: COMPLETED and a ``payout.changed`` webhook."""
        self._move(payout_id, "COMPLETED", None)

    def fail(self, payout_id: str, code: str, message: str) -> None:
        """Toss failed the payout: FAILED with its error and a ``payout.changed`` webhook."""
        self._move(payout_id, "FAILED", {"code": code, "message": message})

    def cancel(self, payout_id: str) -> dict[str, Any] | None:
        """CANCELED if it has not executed yet; ``None`` when it cannot be cancelled."""
        with self._lock:
            payout = self.payouts.get(payout_id)
            if payout is None or payout["status"] != "REQUESTED":
                return None
        self._move(payout_id, "CANCELED", None)
        return self.get(payout_id)

    def _move(self, payout_id: str, status: str, error: dict[str, str] | None) -> None:
        with self._lock:
            payout = self.payouts[payout_id]
            payout["status"] = status
            payout["error"] = error
            if status == "COMPLETED":
                payout["completedAt"] = _now()
            snapshot = dict(payout)
        self.send("payout.changed", "payout", snapshot)

    def pending(self) -> list[str]:
        """Ids of payouts Toss has accepted and not executed."""
        with self._lock:
            return [i for i, p in self.payouts.items() if p["status"] == "REQUESTED"]

    # -- webhooks ------------------------------------------------------------------------

    def send(self, event_type: str, entity_type: str, entity: dict[str, Any]) -> None:
        """Sign and deliver a webhook (``webhook_copies`` times); keep it if refused."""
        body = orjson.dumps(
            {
                "eventId": "evt_" + uuid.uuid4().hex,
                "eventType": event_type,
                "createdAt": _now(),
                "version": API_VERSION,
                "entityType": entity_type,
                "entityBody": entity,
            }
        )
        for _ in range(max(1, self.switches.webhook_copies)):
            self.post(body)

    def seller_changed(self, seller_id: str, status: str) -> None:
        """A ``seller.changed`` webhook (KYC passed or required, …)."""
        self.send("seller.changed", "seller", {"id": seller_id, "status": status})

    def post(self, body: bytes, sent_at: str | None = None) -> int:
        """Deliver ``body`` once, signed now; a refusal keeps it for ``redeliver``."""
        if self.deliver is None:
            with self._lock:
                self.undelivered.append((body, "no webhook URL"))
            return 0
        status = self.deliver(body, self.headers(body, sent_at))
        with self._lock:
            self.delivered.append((body, status))
            if not 200 <= status < 300:
                self.undelivered.append((body, str(status)))
        return status

    def headers(self, body: bytes, sent_at: str | None = None) -> dict[str, str]:
        """The signature headers for ``body`` (a wrong key when ``bad_signature`` is on)."""
        sent = sent_at or datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        key = bytes(32) if self.switches.bad_signature else self.security_key
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(body, sent, [key, bytes(reversed(key))]),
            TIME_HEADER: sent,
        }

    def redeliver(self) -> int:
        """Toss's retry: post every refused webhook again; returns how many got a 2xx."""
        with self._lock:
            waiting, self.undelivered = self.undelivered, []
        return sum(1 for body, _ in waiting if 200 <= self.post(body) < 300)

    # -- what the tests count ------------------------------------------------------------

    def paid(self) -> Counter[tuple[str, str]]:
        """COMPLETED payouts per (job id, payment round)."""
        with self._lock:
            return Counter(
                (str(p["metadata"].get(JOB_FIELD)), str(p["metadata"].get("ledgerRound")))
                for p in self.payouts.values()
                if p["status"] == "COMPLETED"
            )

    def double_payments(self) -> int:
        """Payment rounds Toss paid more than once (goal: 0)."""
        return sum(count - 1 for count in self.paid().values() if count > 1)

    def statement(self) -> list[str]:
        """The provider's statement (``ledger reconcile --statement``): one CSV line per
        COMPLETED payout."""
        lines = ["reference,idempotency_key,amount,currency,settled_at"]
        with self._lock:
            for p in self.payouts.values():
                if p["status"] == "COMPLETED":
                    lines.append(
                        f"{p['id']},{p['refPayoutId']},{p['amount']['value']},"
                        f"{p['amount']['currency']},{p['completedAt']}"
                    )
        return lines


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")
