"""The settlement after the queue: confirmation, cancel, money coming back, payment rounds.

Each command reads the job's stream, decides from the lifecycle and the
money rules (``ledger.decisions``), appends at the version it read (a racing
writer gets ``ConcurrencyError``, and the command reads again) and then
reflects the job in Redis. Refusals append nothing.

* ``confirm`` / ``provider_failed``: the provider's later word on a
  ``submitted`` payout (a webhook, a status look-up).
* ``cancel``: waiting, delayed, failed or dead-lettered jobs; a submitted payout
  only through the provider's own cancellation; never a job a worker holds.
* ``give_back``: ``reversed`` (the provider returned the payout) or ``refunded``
  (the payee gave money back); never more than the payee kept; idempotent on
  the reference/key, or on the same amount and reason.
* ``repay``: a new payment round of the reversed amount.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

from ledger.claims import ClaimedJob, logged_request
from ledger.decisions import (
    cancel_event,
    confirmation_event,
    failure_events,
    money_back_event,
    repay_event,
    repayable,
    returnable,
)
from ledger.errors import (
    ConcurrencyError,
    InvalidRequest,
    JobInFlight,
    JobNotFound,
    RecordConflict,
    TooMuchBack,
    WrongState,
)
from ledger.events import EventType, NewEvent, StoredEvent
from ledger.lifecycle import Job, JobStatus, apply, fold
from ledger.money import MAX_AMOUNT, format_amount
from ledger.ports import EventLog
from ledger.provider import ProviderResult, provider_result
from ledger.repair import QueueRepair
from ledger.retry import RetryPolicy

#: tries of a command whose append lost a race (each reads the job again)
_TRIES = 3

#: ``handler.cancel``: cancels a submitted payout at the provider (or raises ``ProviderRefused``)
ProviderCancel = Callable[[ClaimedJob], Any]


@dataclass(frozen=True, slots=True)
class Settled:
    """What a command left: the job after it, and whether it appended (``False``: the same
    request was already in the history, or the job already stood where it was asked to)."""

    job: Job
    appended: bool

    def as_api(self) -> dict[str, Any]:
        """The job's state and money after the command (the CLI's line, the API's body)."""
        job = self.job
        return {
            "jobId": job.job_id,
            "status": job.status.value,
            "version": job.version,
            "appended": self.appended,
            "currency": job.currency,
            "amount": job.amount,
            "round": job.round,
            "paid": job.paid,
            "reversed": job.reversed,
            "refunded": job.refunded,
            "net": job.net,
            "reference": job.reference,
        }


@dataclass
class Settling:
    """The commands after the queue (see the module docstring)."""

    store: EventLog
    repairs: QueueRepair
    policy: RetryPolicy
    rng: random.Random

    # -- the provider's later word --------------------------------------------------

    def confirm(self, job_id: str, result: ProviderResult, *, actor: str, source: str) -> Settled:
        """A submitted payout is paid: ``completed`` with the provider's outcome.

        Confirming a job that is already completed with the same reference appends
        nothing (webhooks are delivered at least once).
        """
        job, _ = self._read(job_id)
        if job.status is JobStatus.COMPLETED and result.reference in (None, job.reference):
            return Settled(job, appended=False)
        if job.status is not JobStatus.SUBMITTED:
            raise WrongState(job_id, job.status.value, "a confirmation", "for a submitted payout")
        return self._append(job, [confirmation_event(job, result, actor=actor, source=source)])

    def provider_failed(self, job_id: str, reason: str, *, retryable: bool, actor: str) -> Settled:
        """A submitted payout failed at the provider: ``failed``, then retried or dead-lettered."""
        job, _ = self._read(job_id)
        if job.status is not JobStatus.SUBMITTED:
            raise WrongState(
                job_id, job.status.value, "a provider failure", "for a submitted payout"
            )
        events = failure_events(
            job,
            job.attempts,
            reason,
            retryable=retryable,
            actor=actor,
            policy=self.policy,
            rng=self.rng,
        )
        return self._append(job, events)

    # -- operators --------------------------------------------------------------------

    def cancel(
        self, job_id: str, *, actor: str, reason: str, provider_cancel: ProviderCancel | None
    ) -> Settled:
        """Cancel a job before it is paid (see the module docstring for which)."""
        job, _ = self._read(job_id)
        match job.status:
            case JobStatus.CANCELLED:
                return Settled(job, appended=False)
            case JobStatus.PROCESSING:
                raise JobInFlight(job_id, job.attempts, job.worker)
            case JobStatus.COMPLETED:
                raise WrongState(
                    job_id,
                    "completed",
                    "cancel",
                    "before a payout is paid; record money coming "
                    "back with `ledger reverse` or `ledger refund`",
                )
            case JobStatus.SUBMITTED:
                return self._append(
                    job, [self._provider_cancel(job, actor, reason, provider_cancel)]
                )
            case JobStatus.WAITING | JobStatus.FAILED | JobStatus.DEAD:
                if job.paid:
                    raise WrongState(
                        job_id,
                        f"in payment round {job.round}",
                        "cancel",
                        "before the first payment (a later round has paid money before)",
                    )
                return self._append(job, [cancel_event(actor, reason)])
            case _:
                assert_never(job.status)

    def _provider_cancel(
        self, job: Job, actor: str, reason: str, provider_cancel: ProviderCancel | None
    ) -> NewEvent:
        if provider_cancel is None:
            raise WrongState(
                job.job_id,
                f"submitted to the provider (reference {job.reference})",
                "cancel",
                "through the provider: this ledger's handler has no `cancel` for it",
            )
        claimed = ClaimedJob(job, job.updated_at, logged_request(job.request))
        # ``ProviderRefused`` (or any error) from the provider propagates: nothing is appended
        answer = provider_result(provider_cancel(claimed))
        return cancel_event(actor, reason, answer)

    def give_back(
        self,
        job_id: str,
        kind: EventType,
        amount: int,
        *,
        reason: str,
        actor: str,
        token: str | None,
        currency: str | None = None,
    ) -> Settled:
        """``reversed`` or ``refunded`` (``kind``) of ``amount``; idempotent (module docstring).

        ``currency``, when given, must be the job's (amounts are in its minor units).
        """
        if kind not in (EventType.REVERSED, EventType.REFUNDED):
            raise ValueError(f"not money coming back: {kind}")
        _check_amount(amount)
        for _ in range(_TRIES):
            job, events = self._read(job_id)
            if currency is not None and currency != job.currency:
                raise InvalidRequest(
                    f"invalid currency: job {job_id} is paid in {job.currency}, not {currency}",
                    field="currency",
                )
            earlier = _same_request(events, kind, amount, reason, token)
            if earlier is not None:
                return Settled(job, appended=False)
            if job.status is not JobStatus.COMPLETED:
                raise WrongState(
                    job_id, job.status.value, f"a {kind.value} record", "after a payout completed"
                )
            if amount > returnable(job):
                raise TooMuchBack(
                    f"job {job_id}: {format_amount(amount, job.currency)} cannot come back: "
                    f"the payee kept {format_amount(returnable(job), job.currency)} "
                    f"(paid {format_amount(job.paid, job.currency)}, reversed "
                    f"{format_amount(job.reversed, job.currency)}, refunded "
                    f"{format_amount(job.refunded, job.currency)})",
                    field="amount",
                )
            try:
                return self._append(job, [money_back_event(kind, amount, reason, actor, token)])
            except ConcurrencyError:
                continue
        raise ConcurrencyError(job_id, -1, -1)

    def repay(self, job_id: str, *, actor: str, reason: str) -> Settled:
        """Queue a new payment round of the reversed amount the payee has not had again."""
        job, _ = self._read(job_id)
        if job.status is not JobStatus.COMPLETED or repayable(job) <= 0:
            raise WrongState(
                job_id,
                f"{job.status.value} with nothing reversed to pay again",
                "a new payment round",
                "for a completed job a reversal took money back from",
            )
        return self._append(job, [repay_event(job, actor, reason)])

    # -- overdue payouts ----------------------------------------------------------------

    def overdue(self, now: datetime, limit: int = 500) -> list[Job]:
        """Submitted payouts whose confirmation deadline has passed (to be looked up)."""
        due = self.store.submitted_due(now, limit=limit)
        states = self.repairs.log_states([event.job_id for event in due])
        return [states[event.job_id] for event in due if event.job_id in states]

    # -- the mechanics ---------------------------------------------------------------------

    def _read(self, job_id: str) -> tuple[Job, list[StoredEvent]]:
        events = self.store.read_stream(job_id)
        job = fold(events)
        if job is None:
            raise JobNotFound(job_id)
        return job, events

    def _append(self, job: Job, events: list[NewEvent]) -> Settled:
        stored = self.store.append(job.job_id, job.version, events)
        after = fold_onto(job, stored)
        self.repairs.reflect_quietly([after])
        return Settled(after, appended=True)


def fold_onto(job: Job, events: list[StoredEvent]) -> Job:
    """``job`` after ``events`` (its own, appended at its version)."""
    for event in events:
        job = apply(job, event)
    return job


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise InvalidRequest(
            f"invalid amount: must be a whole number of minor units from 1 to {MAX_AMOUNT}",
            field="amount",
        )


def _same_request(
    events: list[StoredEvent], kind: EventType, amount: int, reason: str, token: str | None
) -> StoredEvent | None:
    """The earlier event this request repeats, if any; a token reused for another amount
    is a conflict (as an idempotency key reused for another request is)."""
    token_field = "reference" if kind is EventType.REVERSED else "key"
    for event in events:
        if event.type is not kind:
            continue
        if token is not None and event.data.get(token_field) == token:
            if int(event.data["amount"]) != amount:
                raise RecordConflict(event.job_id, kind.value, token, int(event.data["amount"]))
            return event
        if (
            token is None
            and int(event.data["amount"]) == amount
            and event.data.get("reason") == reason
        ):
            return event
    return None


class SettlementCommands:
    """``Ledger``'s commands after the queue, each delegated to its ``Settling``."""

    settling: Settling

    def cancel(
        self,
        job_id: str,
        *,
        actor: str,
        reason: str,
        provider_cancel: ProviderCancel | None = None,
    ) -> Settled:
        """Cancel a job before it is paid: waiting, delayed, failed or dead-lettered; a
        submitted payout only through ``provider_cancel`` (``handler.cancel``)."""
        return self.settling.cancel(
            job_id, actor=actor, reason=reason, provider_cancel=provider_cancel
        )

    def reverse(
        self,
        job_id: str,
        amount: int,
        *,
        reason: str,
        actor: str,
        reference: str | None = None,
        currency: str | None = None,
    ) -> Settled:
        """Record that the provider returned ``amount`` of a completed payout."""
        return self.settling.give_back(
            job_id, EventType.REVERSED, amount, reason=reason, actor=actor, token=reference,
            currency=currency,
        )  # fmt: skip

    def refund(
        self,
        job_id: str,
        amount: int,
        *,
        reason: str,
        actor: str,
        key: str | None = None,
        currency: str | None = None,
    ) -> Settled:
        """Record that the payee gave ``amount`` of a completed payout back."""
        return self.settling.give_back(
            job_id, EventType.REFUNDED, amount, reason=reason, actor=actor, token=key,
            currency=currency,
        )  # fmt: skip

    def repay(self, job_id: str, *, actor: str, reason: str) -> Settled:
        """Queue a new payment round of what reversals took back."""
        return self.settling.repay(job_id, actor=actor, reason=reason)

    def confirm(
        self, job_id: str, result: ProviderResult, *, actor: str, source: str = "webhook"
    ) -> Settled:
        """The provider confirmed a submitted payout: ``completed``."""
        return self.settling.confirm(job_id, result, actor=actor, source=source)

    def provider_failed(
        self, job_id: str, reason: str, *, actor: str, retryable: bool = True
    ) -> Settled:
        """The provider failed a submitted payout: ``failed``, then retried or dead-lettered."""
        return self.settling.provider_failed(job_id, reason, retryable=retryable, actor=actor)
