"""``ledger cancel``, ``reverse``, ``refund`` and ``repay``: the settlement after the queue.

Each is an operator's action: an event with the actor and the reason, appended
only if the job's state and money allow it (otherwise one line, exit 2, nothing
appended). Each prints the job's state and money as one JSON line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from ledger.cli.app import app, load_settings, print_json
from ledger.errors import InvalidRequest
from ledger.handler import load_handler, provider_call
from ledger.money import MAX_AMOUNT
from ledger.provider import MAX_REFERENCE_LENGTH
from ledger.request import MAX_ID_LENGTH, MAX_JOB_ID_LENGTH, MAX_KEY_LENGTH, MAX_REASON_LENGTH
from ledger.service import Ledger, build_ledger
from ledger.settling import Settled
from ledger.text import check_text

JobArgument = Annotated[str, typer.Argument(help="The job's id.")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the log).")]
Currency = Annotated[
    str | None, typer.Option(help="The job's currency (a check: amounts are its minor units).")
]
Amount = Annotated[
    str, typer.Option(help=f"Whole minor units of the job's currency, 1 to {MAX_AMOUNT:,}.")
]


def minor_units(text: str) -> int:
    """``--amount`` as an integer (its range is the ledger's rule, checked by the command)."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise InvalidRequest(
            f"invalid --amount: {text!r} is not a whole number of minor units", field="amount"
        ) from None


def _run(job_id: str, actor: str, reason: str, command: Callable[[Ledger], Settled]) -> None:
    check_text(job_id, "job id", max_length=MAX_JOB_ID_LENGTH)
    check_text(actor, "--actor", max_length=MAX_ID_LENGTH)
    check_text(reason, "--reason", max_length=MAX_REASON_LENGTH, edges=True)
    ledger = build_ledger(load_settings())
    try:
        result = command(ledger)
    finally:
        ledger.close()
    print_json(result.as_api())


@app.command()
def cancel(
    job_id: JobArgument,
    actor: Annotated[str, typer.Option(help="Who cancels it (recorded in the log).")],
    reason: Reason,
    handler: Annotated[
        str | None,
        typer.Option(
            help="For a payout the provider holds (submitted): the handler whose `cancel` "
            "asks the provider [LEDGER_HANDLER]."
        ),
    ] = None,
) -> None:
    """Cancel a job before it is paid: waiting, delayed, failed or dead-lettered.

    A job a worker is running is refused (exit 2, naming the attempt). A payout
    the provider holds (submitted) is cancelled only through the provider's own
    cancellation, and only if it succeeds. Cancelling a cancelled job appends nothing.
    """
    spec = handler or load_settings().handler
    provider_cancel = provider_call(load_handler(spec), "cancel") if spec else None
    _run(
        job_id,
        actor,
        reason,
        lambda ledger: ledger.cancel(
            job_id, actor=actor, reason=reason, provider_cancel=provider_cancel
        ),
    )


@app.command()
def reverse(
    job_id: JobArgument,
    amount: Amount,
    reason: Reason,
    reference: Annotated[
        str | None,
        typer.Option(help="The provider's reference of the return (the record's idempotency)."),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who records it.")] = "operator",
    currency: Currency = None,
) -> None:
    """Record that the provider returned AMOUNT of a completed payout (bounced, account
    closed, recalled). Never more than the payee kept; the same reference (or, without
    one, the same amount and reason) again appends nothing."""
    if reference is not None:
        check_text(reference, "--reference", max_length=MAX_REFERENCE_LENGTH)
    _run(
        job_id,
        actor,
        reason,
        lambda ledger: ledger.reverse(
            job_id,
            minor_units(amount),
            reason=reason,
            actor=actor,
            reference=reference,
            currency=currency,
        ),
    )


@app.command()
def refund(
    job_id: JobArgument,
    amount: Amount,
    reason: Reason,
    key: Annotated[str | None, typer.Option(help="Your idempotency key for this refund.")] = None,
    actor: Annotated[str, typer.Option(help="Who records it.")] = "operator",
    currency: Currency = None,
) -> None:
    """Record that the payee gave AMOUNT of a completed payout back (partial allowed).
    Never more than the payee kept; the same key (or, without one, the same amount and
    reason) again appends nothing."""
    if key is not None:
        check_text(key, "--key", max_length=MAX_KEY_LENGTH, edges=True)
    _run(
        job_id,
        actor,
        reason,
        lambda ledger: ledger.refund(
            job_id, minor_units(amount), reason=reason, actor=actor, key=key, currency=currency
        ),
    )


@app.command()
def repay(
    job_id: JobArgument,
    actor: Annotated[str, typer.Option(help="Who queues the new round (recorded in the log).")],
    reason: Reason,
) -> None:
    """Pay a reversed amount again: a new payment round of a completed job, queued now.

    The handler gets the round in ``job.round``, what to pay in ``job.amount`` and a
    provider idempotency key of its own (``KEY:round-N``) in ``job.provider_key``.
    """
    _run(job_id, actor, reason, lambda ledger: ledger.repay(job_id, actor=actor, reason=reason))
