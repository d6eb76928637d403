"""Ledger errors as HTTP answers; never SQL, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.errors import (
    DatabaseUnavailable,
    IdempotencyConflict,
    InvalidRequest,
    JobNotFound,
    LedgerError,
    NotInDeadLetterQueue,
    QueueUnavailable,
    SchemaNotReady,
)

log = logging.getLogger("ledger.http")

_STATUS: list[tuple[type[LedgerError], int]] = [
    (InvalidRequest, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (IdempotencyConflict, status.HTTP_409_CONFLICT),
    (JobNotFound, status.HTTP_404_NOT_FOUND),
    (NotInDeadLetterQueue, status.HTTP_409_CONFLICT),
    (DatabaseUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (QueueUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (SchemaNotReady, status.HTTP_503_SERVICE_UNAVAILABLE),
]


def status_for(error: LedgerError) -> int:
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def _field(location: object) -> str:
    parts = [str(part) for part in location] if isinstance(location, list | tuple) else []
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers: ledger errors by kind, anything else a bare 500."""

    @app.exception_handler(LedgerError)
    async def ledger_error(_request: Request, error: LedgerError) -> JSONResponse:
        code = status_for(error)
        body: dict[str, object] = {"detail": error.message}
        if isinstance(error, InvalidRequest) and error.field:
            body["field"] = error.field
        if code >= 500:
            log.error("request failed: %s", type(error).__name__)
        return JSONResponse(body, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, error: RequestValidationError) -> JSONResponse:
        # name the field, never echo the input back (it may hold metadata bodies)
        problems = [
            {"field": _field(problem["loc"]), "message": problem["msg"], "type": problem["type"]}
            for problem in error.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        return JSONResponse(
            {
                "detail": f"invalid {first['field']}: {first['message']}",
                "field": first["field"],
                "errors": problems,
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        # the type name goes to the log; the client learns nothing about internals
        log.error("unexpected error: %s", type(error).__name__)
        return JSONResponse({"detail": "internal error"}, status_code=500)
