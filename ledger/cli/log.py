"""``ledger enqueue``: one settlement into the log (``init`` is ``ledger.cli.init``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any
from uuid import uuid4

import typer

from ledger import strict_json
from ledger.cli.app import app, console, err_console, fail, load_settings, print_json
from ledger.errors import InvalidRequest
from ledger.request import parse_request
from ledger.service import build_ledger


@app.command()
def enqueue(
    user_id: Annotated[str, typer.Option(help="Who is paid.")],
    place_id: Annotated[str, typer.Option(help="Where the mission was done.")],
    mission_id: Annotated[str, typer.Option(help="What was done.")],
    amount: Annotated[
        str, typer.Option(help="Integer amount in the currency's minor unit (KRW 10000).")
    ],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, upper case.")] = "KRW",
    idempotency_key: Annotated[
        str | None, typer.Option(help="Client key; the same key never pays twice. Default: new.")
    ] = None,
    metadata: Annotated[
        str, typer.Option(help='JSON object, e.g. \'{"qr_token": "…", "receipt_id": "…"}\'.')
    ] = "{}",
    delay: Annotated[
        float, typer.Option(min=0, help="Seconds before the job may be claimed.")
    ] = 0.0,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, max=100, help="Attempts in all, the first included.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"jobId": …, "created": …}.')
    ] = False,
) -> None:
    """Enqueue one settlement and print its job id (idempotent per key)."""
    settings = load_settings()
    request = parse_request(
        {
            "user_id": user_id,
            "place_id": place_id,
            "mission_id": mission_id,
            "amount": _parse_amount(amount),
            "currency": currency,
            "idempotency_key": idempotency_key or f"cli-{uuid4()}",
            "metadata": _parse_metadata(metadata),
        }
    )
    # the one line about a refused push is this command's own (below), not the service's log
    logging.getLogger("ledger").addHandler(logging.NullHandler())
    ledger = build_ledger(settings)
    try:
        result = ledger.enqueue(
            request,
            delay=timedelta(seconds=delay) if delay else None,
            max_attempts=max_attempts,
            actor="cli",
        )
    finally:
        ledger.close()
    if as_json:
        print_json({"jobId": result.job_id, "created": result.created, "queued": result.queued})
    else:
        console.print(result.job_id, markup=False, highlight=False)
    if not result.queued:
        # the job is in the log: success, said once, so nobody retries it under a new key
        err_console.print(
            f"warning: job {result.job_id} is saved in the ledger, but Redis refused it for "
            "now; the queue takes it when Redis is back (do not enqueue it again)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _parse_amount(text: str) -> int:
    """Digits only: '1e3', '10.5', ' 7' and '-5' are refused, never rounded."""
    if not text.isascii() or not text.isdigit():
        raise InvalidRequest(
            f"invalid amount: {text!r} is not a whole number of minor units", field="amount"
        )
    return int(text)


def _parse_metadata(text: str) -> dict[str, Any]:
    """Strict JSON, as an HTTP body: duplicate keys and integers beyond 64 bits refused."""
    try:
        value = strict_json.loads(text)
    except InvalidRequest as exc:
        where = f"metadata.{exc.field}" if exc.field else "metadata"
        detail = exc.message.removeprefix("malformed JSON: ").removeprefix(f"invalid {exc.field}: ")
        raise InvalidRequest(f"invalid {where}: {detail}", field=where) from None
    if not isinstance(value, dict):
        raise InvalidRequest("invalid metadata: must be a JSON object", field="metadata")
    return value


__all__ = ["enqueue", "fail"]
