"""``POST /api/webhooks/toss``: verify, deduplicate, then tell the ledger what Toss said.

1. The signature headers must prove Toss sent this body within
   ``LEDGER_TOSS_WEBHOOK_TOLERANCE_SECONDS`` (else 401, nothing recorded).
2. The body must be a ``payout.changed`` or ``seller.changed`` event (else 400).
3. An event id already in the inbox is answered 200 and changes nothing (Toss
   delivers at least once). The event id is the body's ``eventId``; the docs
   we read name none, so without one it is the SHA-256 of the body.
4. ``payout.changed`` names our job in the payout's ``metadata.ledgerJobId``:
   * COMPLETED for the job's current payout → ``confirm`` (``completed``);
   * FAILED for it → ``provider_failed`` (retried when Toss's code says the
     failure was temporary, else dead-lettered);
   * REQUESTED / IN_PROGRESS / CANCELED → noted, nothing appended: a cancel
     is recorded by the operator's ``ledger cancel`` that asked Toss for it
     (its ``cancelled`` carries the actor and reason); a payout cancelled
     outside the ledger is found by the next status look-up (dead-lettered);
   * **out of order**: a final status for a job whose ``submitted`` is not
     recorded yet (a worker still holds it) → 409, nothing recorded: Toss
     delivers it again later (1, 4, 16, … minutes), by when it is;
   * a payout the ledger cannot tie to a job, or not the job's current one →
     kept in the inbox for an operator (200).
5. ``seller.changed`` → kept in the inbox for operators.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger import strict_json
from ledger.errors import (
    ConcurrencyError,
    InvalidRequest,
    JobNotFound,
    LedgerError,
    WrongState,
)
from ledger.lifecycle import Job, JobStatus
from ledger.providers.toss.handler import failure_retryable
from ledger.providers.toss.inbox import InboxEntry, WebhookInbox
from ledger.providers.toss.signature import SIGNATURE_HEADER, TIME_HEADER, verify
from ledger.providers.toss.wire import (
    COMPLETED_STATUS,
    FAILED_STATUS,
    Payout,
    failure_reason,
    read_payout,
    result_of,
)
from ledger.service import Ledger

log = logging.getLogger("ledger.providers.toss.webhooks")
EVENT_TYPES = ("payout.changed", "seller.changed")


@dataclass(frozen=True, slots=True)
class Reply:
    """The HTTP answer to one delivery."""

    status: int
    body: dict[str, Any]


@dataclass
class TossWebhooks:
    """Receives Toss's webhooks for one ledger (see the module docstring)."""

    ledger: Ledger
    inbox: WebhookInbox
    key: bytes
    tolerance_seconds: float
    actor: str = "toss"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Handle one delivery; every refusal logs one line and records nothing."""
        try:
            verify(
                body,
                headers.get(SIGNATURE_HEADER),
                headers.get(TIME_HEADER),
                self.key,
                now=self.clock(),
                tolerance_seconds=self.tolerance_seconds,
            )
        except LedgerError as refused:
            return _refuse(401, refused.message)
        event = _event(body)
        if isinstance(event, Reply):
            return event
        event_id = _event_id(event, body)
        if self.inbox.seen(event_id):
            log.info("toss webhook %s already received; nothing to do", event_id)
            return Reply(200, {"eventId": event_id, "outcome": "duplicate"})
        if event["eventType"] == "seller.changed":
            return self._keep(event_id, event, body, "seller", "seller status changed", None)
        try:
            payout = read_payout(event["entityBody"])
        except (ValueError, TypeError, KeyError) as error:
            return _refuse(400, f"payout.changed without a readable payout: {error}")
        return self._payout_changed(event_id, event, body, payout)

    def _payout_changed(
        self, event_id: str, event: dict[str, Any], body: bytes, payout: Payout
    ) -> Reply:
        job = self._job(payout)
        if job is None:
            detail = f"payout {payout.id} ({payout.ref_payout_id}) names no job of this ledger"
            return self._keep(event_id, event, body, "unknown_payout", detail, payout)
        final = payout.status in (COMPLETED_STATUS, FAILED_STATUS)
        if not final:
            return self._keep(event_id, event, body, "noted", payout.status, payout)
        if job.status is JobStatus.PROCESSING:
            return _refuse(
                409,
                f"payout {payout.id} is {payout.status} but job {job.job_id} is not recorded as "
                "submitted yet; deliver it again later",
            )
        if job.reference != payout.id:
            detail = (
                f"payout {payout.id} is {payout.status}; job {job.job_id} is "
                f"{job.status.value} with payout {job.reference}"
            )
            return self._keep(event_id, event, body, "mismatch", detail, payout)
        outcome = self._apply(job, payout)
        return self._keep(event_id, event, body, outcome, payout.status, payout)

    def _apply(self, job: Job, payout: Payout) -> str:
        try:
            if payout.status == COMPLETED_STATUS:
                settled = self.ledger.confirm(
                    job.job_id, result_of(payout), actor=self.actor, source="webhook"
                )
                return "confirmed" if settled.appended else "already_confirmed"
            self.ledger.provider_failed(
                job.job_id,
                failure_reason(payout),
                actor=self.actor,
                retryable=failure_retryable(payout),
            )
            return "failed"
        except (WrongState, ConcurrencyError) as error:
            # a poll or another delivery settled it first: the log already says what happened
            return f"already_settled: {type(error).__name__}"[:32]

    def _job(self, payout: Payout) -> Job | None:
        """The job the payout names; ``None`` when it names none of this ledger's. A database
        fault propagates (500): Toss delivers the event again."""
        if payout.job_id is None:
            return None
        try:
            return self.ledger.job(payout.job_id)
        except (JobNotFound, InvalidRequest):
            return None

    def _keep(
        self,
        event_id: str,
        event: dict[str, Any],
        body: bytes,
        outcome: str,
        detail: str,
        payout: Payout | None,
    ) -> Reply:
        self.inbox.keep(
            InboxEntry(
                event_id=event_id,
                received_at=self.clock(),
                event_type=str(event["eventType"]),
                outcome=outcome,
                detail=detail,
                body=body.decode("utf-8", "replace"),
                payout_id=None if payout is None else payout.id,
                job_id=None if payout is None else payout.job_id,
            )
        )
        log.info("toss webhook %s %s: %s (%s)", event_id, event["eventType"], outcome, detail)
        return Reply(200, {"eventId": event_id, "outcome": outcome})


def _event(body: bytes) -> dict[str, Any] | Reply:
    try:
        event = strict_json.loads(body)
    except LedgerError as error:
        return _refuse(400, f"webhook body is not strict JSON: {error.message}")
    if not isinstance(event, dict):
        return _refuse(400, "webhook body is not a JSON object")
    if event.get("eventType") not in EVENT_TYPES:
        return _refuse(400, f"unknown webhook type {str(event.get('eventType'))[:64]!r}")
    if not isinstance(event.get("entityBody"), dict):
        return _refuse(400, "webhook without an entityBody object")
    return event


def _event_id(event: Mapping[str, Any], body: bytes) -> str:
    given = event.get("eventId")
    if isinstance(given, str) and 0 < len(given) <= 200:
        return given
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _refuse(status: int, reason: str) -> Reply:
    log.warning("toss webhook refused (%d): %s", status, reason)
    return Reply(status, {"title": "webhook refused", "status": status, "detail": reason})
