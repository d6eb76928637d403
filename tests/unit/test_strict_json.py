"""The strict JSON parser: what it refuses, how it names the field, what it keeps exact."""

from __future__ import annotations

import json

import pytest

from ledger import strict_json
from ledger.errors import InvalidRequest, MalformedJson


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1, "b": [1, 2.5, "x", null, true]}', {"a": 1, "b": [1, 2.5, "x", None, True]}),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
        ('"\\u2028"', "\u2028"),
        ('{"a": {"a": 1}}', {"a": {"a": 1}}),
        ("[" * 64 + "]" * 64, json.loads("[" * 64 + "]" * 64)),
        ('["[[[[", "]]"]', ["[[[[", "]]"]),
        ('{"k\\"[": 1}', {'k"[': 1}),
    ],
)
def test_accepts_what_json_means(text: str, value: object) -> None:
    assert strict_json.loads(text) == value
    assert strict_json.loads(text.encode()) == value


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"amount": 10000, "amount": 99999999}', "amount"),
        ('{"metadata": {"x": 1, "y": 2, "x": 3}}', "metadata.x"),
        ('{"list": [{"a": 1}, {"a": 1, "a": 2}]}', "list.1.a"),
        (f'{{"n": {2**63}}}', "n"),
        (f'{{"n": {-(2**63) - 1}}}', "n"),
        (f'{{"metadata": {{"big": {2**64}}}}}', "metadata.big"),
        ('{"n": ' + "1" * 5000 + "}", "n"),
        ('{"n": 1e999}', "n"),
        ('{"n": -1e999}', "n"),
        (str(2**64), "body"),
    ],
)
def test_refuses_with_the_field_named(text: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        strict_json.loads(text)
    assert not isinstance(caught.value, MalformedJson)
    assert caught.value.field == field
    assert caught.value.message.startswith(f"invalid {field}: ")


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe{}",
        b'{"a": "\xc3"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a": ' * 100 + b"1" + b"}" * 100,
        b'{"amount": 1',
        b"",
        b"NaN",
        b'{"n": Infinity}',
        b'{"n": -Infinity}',
        b"{'a': 1}",
        b'{"a": 1} trailing',
    ],
)
def test_refuses_text_that_is_not_json(text: bytes) -> None:
    with pytest.raises(MalformedJson) as caught:
        strict_json.loads(text)
    assert caught.value.field is None
    assert caught.value.message.startswith("malformed JSON: ")
