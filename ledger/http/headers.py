"""Headers on every answer, and an access log that keeps query strings to their names.

``SecurityHeaders`` (pure ASGI, outermost) adds ``X-Content-Type-Options:
nosniff`` everywhere and ``Cache-Control: no-store`` on everything but the
Swagger UI's static assets: the API's answers carry user ids, amounts and
metadata, which no cache or browser history should keep.

``QueryOutOfAccessLog`` is a logging filter for uvicorn's access log: a query
string may hold a token someone pasted (``?access_token=…``, or a bare ``?T``)
or personal data (``?userId=…``), so the log keeps the path and drops the query.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: answers that may be cached: the vendored, versioned Swagger UI files
CACHEABLE_PREFIX = "/docs/assets/"


class SecurityHeaders:
    """Add the headers above to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith(CACHEABLE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in (b"x-content-type-options", b"cache-control")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append(
                    (b"cache-control", b"public, max-age=86400" if cacheable else b"no-store")
                )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def redact_query(path: str) -> str:
    """``/api/events?userId=alice&token=x`` → ``/api/events?…``."""
    base, sep, _query = path.partition("?")
    return f"{base}?…" if sep else path


class QueryOutOfAccessLog(logging.Filter):
    """Rewrite uvicorn's access-log record: the path without its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access: (client address, method, full path, HTTP version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2]), args[3], args[4])
        return True


def keep_query_values_out_of_the_access_log() -> None:
    """Install ``QueryOutOfAccessLog`` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, QueryOutOfAccessLog) for existing in access.filters):
        access.addFilter(QueryOutOfAccessLog())
