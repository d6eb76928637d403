"""``ledger serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ledger.cli.app import app, fail, load_settings
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
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). Without LEDGER_API_TOKENS, loopback only."""
    settings = load_settings()
    tokens = parse_tokens(settings.api_tokens)
    if not tokens and not is_loopback(host):
        fail(
            f"refusing to bind {host} without LEDGER_API_TOKENS: set tokens "
            "(role:token pairs) or bind 127.0.0.1",
            code=2,
        )
    import uvicorn

    uvicorn.run(
        "ledger.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
