from __future__ import annotations

from typing import Any

import pytest
from pydantic.alias_generators import to_camel

from ledger.errors import InvalidRequest
from ledger.money import format_amount, minor_unit_exponent
from ledger.request import SettlementRequest, parse_request

GOOD: dict[str, Any] = {
    "userId": "user-1",
    "placeId": "place-1",
    "missionId": "mission-1",
    "amount": 10_000,
    "currency": "KRW",
    "idempotencyKey": "key-1",
    "metadata": {"qrToken": "qr", "receiptId": "r1"},
}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


BAD: list[tuple[str, Any, str]] = [
    ("amount", -1, "amount"),
    ("amount", 0, "amount"),
    ("amount", 10.0, "amount"),
    ("amount", 10.5, "amount"),
    ("amount", "1e3", "amount"),
    ("amount", "100", "amount"),
    ("amount", True, "amount"),
    ("amount", 10**30, "amount"),
    ("amount", None, "amount"),
    ("currency", "usd", "currency"),
    ("currency", "XYZ", "currency"),
    ("currency", "XXX", "currency"),
    ("currency", "XAU", "currency"),
    ("currency", "KRWW", "currency"),
    ("currency", "", "currency"),
    ("userId", "", "user_id"),
    ("userId", "u" * 129, "user_id"),
    ("userId", "bad\x00id", "user_id"),
    ("userId", "bad\nid", "user_id"),
    ("userId", "bad\x1bid", "user_id"),
    ("userId", " padded", "user_id"),
    ("userId", 42, "user_id"),
    ("placeId", "p\x7f", "place_id"),
    ("missionId", "m\x85", "mission_id"),
    ("idempotencyKey", "", "idempotency_key"),
    ("idempotencyKey", "k" * 256, "idempotency_key"),
    ("idempotencyKey", "k\tk", "idempotency_key"),
    ("metadata", {"blob": "x" * 1_000_000}, "metadata"),
    ("metadata", deep(10_000), "metadata"),
    ("metadata", deep(9), "metadata"),
    ("metadata", {"s": "nul\x00"}, "metadata"),
    ("metadata", {"f": float("nan")}, "metadata"),
    ("metadata", ["not", "an", "object"], "metadata"),
]


@pytest.mark.parametrize(("field", "value", "named"), BAD)
def test_bad_input_is_a_clear_typed_error(field: str, value: Any, named: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request({**GOOD, field: value})
    # the field is named as the caller spelled it (camelCase here)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert caught.value.message.startswith(f"invalid {field}")
    assert to_camel(named) == field
    assert "Traceback" not in caught.value.message


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="surprise"):
        parse_request({**GOOD, "surprise": 1})


@pytest.mark.parametrize("field", ["userId", "placeId", "missionId", "amount", "idempotencyKey"])
def test_required_fields(field: str) -> None:
    data = dict(GOOD)
    del data[field]
    with pytest.raises(InvalidRequest):
        parse_request(data)


def test_good_request_in_both_spellings() -> None:
    camel = parse_request(GOOD)
    snake = SettlementRequest(
        user_id="user-1",
        place_id="place-1",
        mission_id="mission-1",
        amount=10_000,
        idempotency_key="key-1",
        metadata={"qrToken": "qr", "receiptId": "r1"},
    )
    assert camel == snake
    assert camel.currency == "KRW"
    assert camel.fingerprint() == snake.fingerprint()


def test_sql_injection_strings_are_just_text() -> None:
    nasty = "x'); DROP TABLE events; --"
    request = parse_request({**GOOD, "userId": nasty, "metadata": {"q": nasty}})
    assert request.user_id == nasty


def test_fingerprint_changes_with_content() -> None:
    a = parse_request(GOOD)
    b = parse_request({**GOOD, "amount": 10_001})
    c = parse_request({**GOOD, "metadata": {"qrToken": "other"}})
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3


@pytest.mark.parametrize(
    ("code", "exponent"), [("KRW", 0), ("USD", 2), ("JPY", 0), ("KWD", 3), ("EUR", 2)]
)
def test_minor_units(code: str, exponent: int) -> None:
    assert minor_unit_exponent(code) == exponent


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(10_000, "KRW", "10,000 KRW"), (123_456, "USD", "1,234.56 USD"), (5, "KWD", "0.005 KWD")],
)
def test_format_amount_is_exact(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text
