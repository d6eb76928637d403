"""``ledger pause`` and ``ledger resume``: the queue's controls, as operator events.

Each appends one event to the operator stream with the actor and the reason
(or nothing, when the queue already stands where it is asked to be) and prints
the controls after it as one JSON line. Workers stop claiming within a claim of
the pause (jobs already claimed finish); enqueues go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from ledger.cli.app import app, load_settings, print_json
from ledger.operating import Controlled
from ledger.request import MAX_ID_LENGTH, MAX_REASON_LENGTH
from ledger.service import Ledger, build_ledger
from ledger.text import check_text

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
