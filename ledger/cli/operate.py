"""``ledger pause``, ``ledger resume`` and ``ledger bulk``: the queue's controls and bulk
actions, as operator events.

Each appends one event to the operator stream with the actor and the reason
(or nothing, when the queue already stands where it is asked to be) and prints
the controls after it as one JSON line. Workers stop claiming within a claim of
the pause (jobs already claimed finish); enqueues go on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from ledger.business_time import parse_moment
from ledger.cli.app import app, load_settings, print_json
from ledger.compose.bulk import BulkAction, execute, preview
from ledger.operating import Controlled
from ledger.request import MAX_ID_LENGTH, MAX_REASON_LENGTH
from ledger.service import Ledger, build_ledger
from ledger.text import check_text
from projections.listing import JobFilter

Actor = Annotated[str, typer.Option(help="Who does it (recorded in the log).")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the log).")]


def _run(actor: str, reason: str, command: Callable[[Ledger], Controlled]) -> None:
    check_text(actor, "--actor", max_length=MAX_ID_LENGTH)
    check_text(reason, "--reason", max_length=MAX_REASON_LENGTH, edges=True)
    ledger = build_ledger(load_settings())
    try:
        result = command(ledger)
    finally:
        ledger.close()
    print_json(result.as_api())


@app.command()
def pause(actor: Actor, reason: Reason) -> None:
    """Pause the queue: workers stop claiming (running jobs finish), enqueues go on.

    The pause is an event in the log: it survives restarts and the loss of Redis.
    ``ledger worker --burst`` on a paused queue exits, saying so. Pausing a
    paused queue appends nothing.
    """
    _run(actor, reason, lambda ledger: ledger.pause(actor=actor, reason=reason))


@app.command()
def resume(actor: Actor, reason: Reason) -> None:
    """Resume a paused queue: workers claim again. Resuming a running queue appends nothing."""
    _run(actor, reason, lambda ledger: ledger.resume(actor=actor, reason=reason))


@app.command()
def limits(
    rate: Annotated[
        int, typer.Option(help="Most attempts started per second in this queue; 0: no limit.")
    ],
    actor: Actor,
    reason: Reason,
) -> None:
    """Set the provider rate limit of the queue (an event in the log; the claim script
    enforces it across every worker). Setting the limit it has appends nothing."""
    _run(actor, reason, lambda ledger: ledger.set_limits(rate=rate, actor=actor, reason=reason))


@app.command()
def bulk(
    action: Annotated[BulkAction, typer.Argument(help="cancel or requeue.")],
    status: Annotated[str, typer.Option(help="dead (the DLQ) or waiting (cancel only).")] = "dead",
    user: Annotated[str | None, typer.Option(help="Only this user's jobs.")] = None,
    place: Annotated[str | None, typer.Option(help="Only this place's jobs.")] = None,
    mission: Annotated[str | None, typer.Option(help="Only this mission's jobs.")] = None,
    currency: Annotated[str | None, typer.Option(help="Only jobs in this currency.")] = None,
    min_amount: Annotated[int | None, typer.Option(help="Minor units, at least.")] = None,
    max_amount: Annotated[int | None, typer.Option(help="Minor units, at most.")] = None,
    reason_contains: Annotated[
        str | None, typer.Option(help="The job's last error contains this text.")
    ] = None,
    changed_from: Annotated[
        str | None, typer.Option(help="Last change (the failure) at or after, ISO 8601.")
    ] = None,
    changed_to: Annotated[str | None, typer.Option(help="Last change before, ISO 8601.")] = None,
    confirm: Annotated[
        str | None, typer.Option(help="The token of the preview to run (without: a dry run).")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who does it (recorded in the log).")] = "operator",
    reason: Annotated[str, typer.Option(help="Why (recorded in the log).")] = "bulk action",
) -> None:
    """Cancel or requeue the jobs a filter selects: first a dry run (count, amount per
    currency, a token), then the same command with ``--confirm TOKEN`` runs exactly
    that set (refused if the filter now selects another). Safe to run again."""
    wanted = JobFilter(
        status=status,
        user_id=user,
        place_id=place,
        mission_id=mission,
        currency=currency,
        min_amount=min_amount,
        max_amount=max_amount,
        reason_contains=reason_contains,
        changed_from=_moment(changed_from, "--changed-from"),
        changed_to=_moment(changed_to, "--changed-to"),
    )
    ledger = build_ledger(load_settings())
    try:
        if confirm is None:
            print_json({**preview(ledger, action, wanted).as_api(), "dryRun": True})
            return
        check_text(actor, "--actor", max_length=MAX_ID_LENGTH)
        check_text(reason, "--reason", max_length=MAX_REASON_LENGTH, edges=True)
        result = execute(ledger, action, wanted, confirm, actor=actor, reason=reason)
        print_json(result.as_api())
    finally:
        ledger.close()


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    return parse_moment(text, option, load_settings().business_zone, end_of_day=False)
