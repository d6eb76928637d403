"""Ledger errors as HTTP answers; never SQL, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ledger.errors import (
    BulkChanged,
    ConcurrencyError,
    DatabaseUnavailable,
    IdempotencyConflict,
    InvalidRequest,
    JobNotFound,
    LedgerError,
    MalformedJson,
    NotInDeadLetterQueue,
    ProviderRefused,
    QueueUnavailable,
    RecordConflict,
    SchemaNotReady,
    WrongState,
)
from ledger.http.problems import problem_response

log = logging.getLogger("ledger.http")

_STATUS: list[tuple[type[LedgerError], int]] = [
    (MalformedJson, status.HTTP_400_BAD_REQUEST),
    (InvalidRequest, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ConcurrencyError, status.HTTP_409_CONFLICT),
    (IdempotencyConflict, status.HTTP_409_CONFLICT),
    (JobNotFound, status.HTTP_404_NOT_FOUND),
    (NotInDeadLetterQueue, status.HTTP_409_CONFLICT),
    (WrongState, status.HTTP_409_CONFLICT),
    (BulkChanged, status.HTTP_409_CONFLICT),
    (RecordConflict, status.HTTP_409_CONFLICT),
    (ProviderRefused, status.HTTP_409_CONFLICT),
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
        field = error.field if isinstance(error, InvalidRequest) else None
        if code >= 500:
            log.error("request failed: %s", type(error).__name__)
        return problem_response(code, error.message, field=field)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return problem_response(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, error: RequestValidationError) -> JSONResponse:
        # name the field, never echo the input back (it may hold metadata bodies)
        problems = [
            {
                "field": _field(problem["loc"]),
                "message": str(problem["msg"]).removeprefix("Value error, "),
                "type": problem["type"],
            }
            for problem in error.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        return problem_response(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid {first['field']}: {first['message']}",
            field=first["field"],
            errors=problems,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        # the type name goes to the log; the client learns nothing about internals
        log.error("unexpected error: %s", type(error).__name__)
        return problem_response(500, "internal error")
