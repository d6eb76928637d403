"""The settlement request: what a service asks the ledger to pay, validated strictly."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from ledger.errors import InvalidRequest
from ledger.money import MAX_AMOUNT, minor_unit_exponent
from ledger.strict_json import INT_MAX, INT_MIN

MAX_ID_LENGTH = 128
MAX_KEY_LENGTH = 255
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    return value


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable (no control or format characters)")
    return value


def _currency(value: str) -> str:
    minor_unit_exponent(value)
    return value


def _check_metadata_value(value: object) -> None:
    """Walk iteratively (a 10,000-deep object must not blow the stack)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"must be nested at most {MAX_METADATA_DEPTH} levels deep")
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise ValueError("keys must be strings")
            stack.extend((child, depth + 1) for child in (*item.keys(), *item.values()))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        else:
            _check_scalar(item)


def _check_scalar(item: object) -> None:
    if isinstance(item, str) and "\x00" in item:
        raise ValueError("strings must not contain NUL characters")
    if isinstance(item, float) and not math.isfinite(item):
        raise ValueError("numbers must be finite")
    if isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
        raise ValueError("integers must fit in 64 bits (signed)")
    if item is not None and not isinstance(item, str | bool | int | float):
        raise ValueError(f"values must be JSON (got {type(item).__name__})")


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    _check_metadata_value(value)
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"must be JSON-serialisable ({exc})") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON (got {size})")
    return value


Identifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_control_characters),
]
IdempotencyKey = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(_printable)
]
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
CurrencyCode = Annotated[StrictStr, AfterValidator(_currency)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]


class SettlementRequest(BaseModel):
    """Pay ``user_id`` ``amount`` minor units of ``currency`` for ``mission_id`` at ``place_id``.

    Strict: no coercion (``"100"``, ``100.0`` and ``True`` are refused as amounts).
    Field names are snake_case in Python and camelCase on the wire.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )

    user_id: Identifier
    place_id: Identifier
    mission_id: Identifier
    amount: Amount
    currency: CurrencyCode = "KRW"
    idempotency_key: IdempotencyKey
    metadata: Metadata = Field(default_factory=dict)

    def fingerprint(self) -> str:
        """Hash of the request's content: the same key must come with the same fingerprint."""
        return fingerprint_of(self.as_record())

    def as_record(self) -> dict[str, Any]:
        """The snake_case dict stored in the ``enqueued`` event."""
        return self.model_dump(by_alias=False)


def canonical_json(value: object) -> bytes:
    """Sorted-key compact JSON: the one byte form used for hashing and storage."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def fingerprint_of(record: Mapping[str, Any]) -> str:
    """The fingerprint of a request from its record (``as_record``), dumped once by the caller."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def parse_request(data: object) -> SettlementRequest:
    """Validate untrusted input into a request, or raise ``InvalidRequest`` naming the field."""
    try:
        return SettlementRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


def invalid_request_from(exc: ValidationError) -> InvalidRequest:
    """One clear line from pydantic's error list (first error wins, the rest counted)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "request"
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidRequest(f"invalid {field}: {message}{more}", field=field)


def wire_settlement(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored request record under its wire (camelCase) names, as the API returns it."""
    return {
        "userId": record["user_id"],
        "placeId": record["place_id"],
        "missionId": record["mission_id"],
        "amount": record["amount"],
        "currency": record["currency"],
        "idempotencyKey": record["idempotency_key"],
        "metadata": record.get("metadata", {}),
    }
