"""``ledger serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer
import uvicorn

from ledger.cli.app import app, fail, load_settings
from ledger.handler import load_handler
from ledger.http.auth import parse_tokens


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="HTTP worker processes (uvicorn).")
    ] = 1,
    handler: Annotated[
        str | None,
        typer.Option(
            help="Embedded default only: run a worker with this module:callable in the server "
            "[LEDGER_HANDLER]."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). Without LEDGER_API_TOKENS, loopback only.

    On the embedded default (no LEDGER_REDIS_URL) the server also runs the
    projection follower and, with --handler, a worker: one command, whole system.
    """
    settings = load_settings()
    if handler is not None:
        if settings.redis_url is not None:
            fail(
                "--handler runs a worker inside the server only on the embedded default; "
                "with LEDGER_REDIS_URL run `ledger worker --handler …` instead",
                code=2,
            )
        load_handler(handler)  # a bad name fails here, not in the server's start-up
        os.environ["LEDGER_HANDLER"] = handler
    if settings.redis_url is None and workers > 1:
        fail(
            "the embedded default runs in one process: use --workers 1, or set "
            "LEDGER_REDIS_URL to share a Redis between processes",
            code=2,
        )
    tokens = parse_tokens(settings.api_tokens)
    if not tokens and not is_loopback(host):
        fail(
            f"refusing to bind {host} without LEDGER_API_TOKENS: set tokens "
            "(role:token pairs) or bind 127.0.0.1",
            code=2,
        )
    uvicorn.run(
        "ledger.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
