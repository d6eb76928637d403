"""Looking up submitted payouts that the provider has not confirmed in time.

A payout the provider accepted (``submitted``) waits for a webhook. Past its
confirmation deadline (``LEDGER_CONFIRM_WITHIN_SECONDS``) it is overdue: each
worker whose handler has a ``poll`` looks it up on its own thread (a provider
call may take a minute; lease renewals must not wait for it), at most once per
``LEDGER_POLL_EVERY_SECONDS`` per payout, and records what the provider says:
``completed``, or ``failed`` (retried or dead-lettered by the usual rules), or
nothing while it is still pending. Several workers may look the same payout up;
the log's version check lets one answer be recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.claims import ClaimedJob, Outcome, logged_request
from ledger.errors import ConcurrencyError, WrongState
from ledger.handler import Handler, ProviderCall, polled, provider_call
from ledger.lifecycle import Job
from ledger.service import Ledger

log = logging.getLogger("ledger.polling")


@dataclass
class Poller:
    """Looks overdue submitted payouts up through ``handler.poll`` (see the module docstring)."""

    ledger: Ledger
    poll: ProviderCall
    actor: str
    every_seconds: float
    #: monotonic time before which a payout is not looked up again
    _next: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, ledger: Ledger, handler: Handler, actor: str) -> Poller | None:
        """A poller if the handler can look payouts up, else ``None``."""
        poll = provider_call(handler, "poll")
        if poll is None:
            return None
        return cls(ledger, poll, actor, ledger.settings.poll_every_seconds)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set (a worker's ``ledger-poller`` thread)."""
        while not stop.wait(min(self.every_seconds, 5.0)):
            try:
                self.poll_due()
            except Exception as error:  # retried at the next tick, as maintenance is
                log.warning("looking up overdue payouts failed (%s); retrying", error)

    def poll_due(self, now: datetime | None = None) -> int:
        """Look up every overdue payout not looked up recently; returns how many settled."""
        settled = 0
        for job in self.ledger.settling.overdue(now or datetime.now(UTC)):
            if self._next.get(job.job_id, 0.0) > time.monotonic():
                continue
            if self._look_up(job):
                settled += 1
                self._next.pop(job.job_id, None)
            else:
                self._next[job.job_id] = time.monotonic() + self.every_seconds
        return settled

    def _look_up(self, job: Job) -> bool:
        claimed = ClaimedJob(job, job.updated_at, logged_request(job.request))
        answer = polled(self.poll, claimed)
        try:
            if isinstance(answer, Outcome):
                reason = answer.error or "failed at the provider"
                self.ledger.provider_failed(
                    job.job_id, reason, actor=self.actor, retryable=answer.retryable
                )
                return True
            if answer.pending:
                return False
            self.ledger.confirm(job.job_id, answer, actor=self.actor, source="poll")
        except (WrongState, ConcurrencyError):
            return True  # a webhook or another worker settled it meanwhile
        return True
