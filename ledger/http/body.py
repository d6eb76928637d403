"""Every request body passes here before any endpoint sees it: capped, then strictly parsed.

``BodyGuard`` is a pure ASGI middleware installed by ``create_app`` (after the
token gate in ``ledger.http.auth``, so an unauthenticated body is never read):

* a ``Content-Length`` above ``LEDGER_MAX_BODY_BYTES`` is answered 413 before
  one byte of the body is read; a chunked body is counted as it arrives and
  answered 413 as soon as it passes the cap (the rest is never buffered, and
  the connection is closed);
* a JSON body (``application/json``, ``application/*+json``, or no
  ``Content-Type``) must pass ``ledger.strict_json.loads``: duplicate keys,
  integers beyond 64 bits, non-finite numbers → 422 naming the field; text that
  is not JSON (bad UTF-8, syntax, 10,000-deep nesting) → 400 with ``field: null``.

A new endpoint needs nothing to get all this: declare the body as a pydantic
model as usual (``extra="forbid"``, identifiers typed with
``ledger.request.Identifier``); FastAPI then parses bytes that already passed
the guard. Only an endpoint that reads ``request.body()`` itself must parse it
with ``ledger.strict_json.loads``, never ``json.loads``.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import strict_json
from ledger.errors import InvalidRequest, MalformedJson
from ledger.http.problems import problem_response

#: one line per refused body (the path and why; never the body itself)
log = logging.getLogger("ledger.http.body")


class BodyGuard:
    """Cap every request body at ``max_bytes`` and refuse JSON that is not strict JSON."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            _refused(scope, 400, "invalid Content-Length header")
            await problem_response(400, "invalid Content-Length header")(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        if body and _is_json(headers.get("content-type")):
            try:
                strict_json.loads(body)
            except MalformedJson as error:
                _refused(scope, 400, error.message)
                await problem_response(400, error.message)(scope, receive, send)
                return
            except InvalidRequest as error:
                _refused(scope, 422, error.message)
                response = problem_response(422, error.message, field=error.field)
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the cap (nothing more is read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        _refused(scope, 413, f"body larger than {self.max_bytes} bytes")
        response = problem_response(
            413,
            f"request body larger than {self.max_bytes} bytes; "
            "a settlement needs a few KiB (the limit is LEDGER_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _refused(scope: Scope, status: int, reason: str) -> None:
    method, path = scope.get("method"), scope.get("path")
    log.warning("refused %s %s body (%d): %s", method, path, status, reason)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
