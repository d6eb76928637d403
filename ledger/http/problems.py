"""The one shape of every 4xx (and 5xx) answer: ``{"detail", "field", "errors"}``.

* ``detail``: one line saying what is wrong and what to do;
* ``field``: the request field at fault, by its wire name and dotted path
  (``amount``, ``metadata.receiptId``, ``jobId``), or ``null`` when no single
  field is (a bad token, a body that is not JSON, an unknown job);
* ``errors``: every problem found, each ``{"field", "message", "type"}``; empty
  when there is only the one in ``detail``.

Never an input value echoed back (bodies carry metadata), never SQL or a trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    """One problem with one field."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted wire name of the field (`body` for the whole body).")
    message: str
    type: str = Field(description="A stable machine-readable kind, e.g. `missing`, `int_type`.")


class Problem(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="One line: what is wrong and what to do.")
    field: str | None = Field(description="The request field at fault, or null.")
    errors: list[FieldProblem] = Field(description="Every problem found (may be empty).")


def problem_body(
    detail: str, *, field: str | None = None, errors: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    return {"detail": detail, "field": field, "errors": [dict(problem) for problem in errors]}


def problem_response(
    code: int,
    detail: str,
    *,
    field: str | None = None,
    errors: Sequence[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A ``Problem`` answer (an ASGI app too, so middleware can send it)."""
    return JSONResponse(
        problem_body(detail, field=field, errors=errors),
        status_code=code,
        headers=dict(headers) if headers else None,
    )


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each code answered with a ``Problem``."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    400: "The body is not JSON, or a header is malformed.",
    401: "Missing or unknown bearer token.",
    403: "This role may not do this.",
    404: "Not found.",
    409: "Conflict with the job's current state or another writer.",
    413: "The body is larger than LEDGER_MAX_BODY_BYTES.",
    422: "A field is invalid; `field` names it.",
    503: "The database or Redis is unavailable.",
}
