"""The settlement request: what a service asks the ledger to pay, validated strictly."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from iso4217 import Currency
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
from ledger.text import identifier_text, printable_text

MAX_ID_LENGTH = 128
MAX_JOB_ID_LENGTH = 64
MAX_KEY_LENGTH = 255
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8
MAX_REASON_LENGTH = 500


def currency_code(value: str) -> str:
    """``value`` if it is a currency the ledger pays in, else ``ValueError``."""
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


def _payable_currencies() -> tuple[str, ...]:
    codes: list[str] = []
    for currency in Currency:
        try:
            minor_unit_exponent(currency.code)
        except ValueError:
            continue
        codes.append(currency.code)
    return tuple(sorted(set(codes)))


#: every code ``currency_code`` accepts, listed in the OpenAPI document
CURRENCIES = _payable_currencies()

#: the description every identifier carries in the OpenAPI document
PRINTABLE_DESCRIPTION = (
    "Printable text: no control, format (bidi, zero-width), line-separator, private-use "
    "or unassigned characters."
)
IDENTIFIER_DESCRIPTION = PRINTABLE_DESCRIPTION + " No white space at either end."

#: every identifier (user, place, mission, job, provider reference): the one rule
Identifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_ID_LENGTH, description=IDENTIFIER_DESCRIPTION),
    AfterValidator(identifier_text),
]
#: a job's id (the ledger makes UUIDs; anything else is simply not found)
JobIdentifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_JOB_ID_LENGTH, description=IDENTIFIER_DESCRIPTION),
    AfterValidator(identifier_text),
]
IdempotencyKey = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_KEY_LENGTH, description=PRINTABLE_DESCRIPTION),
    AfterValidator(printable_text),
]
#: operator text recorded in the log (a requeue's reason): the same rule, longer
Reason = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_REASON_LENGTH, description=PRINTABLE_DESCRIPTION),
    AfterValidator(printable_text),
]
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
CurrencyCode = Annotated[
    StrictStr,
    Field(json_schema_extra={"enum": list(CURRENCIES)}),
    AfterValidator(currency_code),
]
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
        validate_by_alias=True,
        validate_by_name=True,
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


class WireSettlement(SettlementRequest):
    """The HTTP body: camelCase names only, as the OpenAPI document lists them.

    ``user_id`` on the wire is an unknown field (422), not a second spelling:
    one name per field, so a validator or proxy in front of the ledger and the
    ledger itself always read the same member. Python callers (the CLI, tests)
    keep both spellings through ``SettlementRequest``.
    """

    model_config = ConfigDict(validate_by_name=False, title="SettlementRequest")


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
