"""The one JSON parser for untrusted text: every HTTP body and the CLI's ``--metadata``.

Stricter than ``json.loads`` where leniency changes meaning on the way in:

* a duplicate key in any object is refused (a proxy reading the first
  ``amount`` and the ledger the last would disagree about what was paid);
* integers must fit in 64 bits (signed: ``-2**63 .. 2**63-1``), so nothing is
  widened to a float or rejected later by the store;
* numbers must be finite (``1e999`` is not silently infinity);
* ``NaN``/``Infinity`` literals, invalid UTF-8 and nesting deeper than
  ``MAX_DEPTH`` are refused before the parser runs out of stack.

Text that is not JSON at all raises ``MalformedJson`` (HTTP 400, no field);
JSON that breaks one of the rules raises ``InvalidRequest`` naming the field by
its dotted path (HTTP 422). Pure: no IO.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ledger.errors import InvalidRequest, MalformedJson

#: deeper than any document the ledger accepts (metadata allows 8 levels)
MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
#: an integer literal longer than this cannot fit in 64 bits (sign + 19 digits)
_MAX_INT_DIGITS = 20

_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class _Pairs(list[tuple[str, Any]]):
    """An object's members in document order, duplicates kept until ``_build`` checks them."""


class _BigInt(str):
    """An integer literal too long for 64 bits, kept as text (never converted: 10**5000)."""


def loads(text: bytes | str) -> Any:
    """Parse untrusted JSON text under the rules above; never a traceback."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"malformed JSON: not UTF-8 text (byte {exc.start})") from None
    _check_depth(text)
    try:
        raw = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_parse_int,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise MalformedJson(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return _build(raw)


def _check_depth(text: str) -> None:
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise MalformedJson(f"malformed JSON: nested deeper than {MAX_DEPTH} levels")


def _parse_int(literal: str) -> int | _BigInt:
    if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
        return _BigInt(literal)
    return int(literal)


def _refuse_constant(name: str) -> Any:
    raise MalformedJson(f"malformed JSON: {name} is not a JSON number")


def _build(raw: Any) -> Any:
    """Turn ``_Pairs`` into dicts, checking keys and numbers, with the path of each value."""
    root: list[Any] = [None]
    # (value, container, slot, path): iterative, so depth costs no stack
    work: list[tuple[Any, Any, Any, str]] = [(raw, root, 0, "")]
    while work:
        value, container, slot, path = work.pop()
        if isinstance(value, _Pairs):
            built: dict[str, Any] = {}
            for key, child in value:
                child_path = f"{path}.{key}" if path else key
                if key in built:
                    raise InvalidRequest(f"invalid {child_path}: duplicate key", field=child_path)
                built[key] = None
                work.append((child, built, key, child_path))
            container[slot] = built
        elif isinstance(value, list):
            items: list[Any] = [None] * len(value)
            for index, child in enumerate(value):
                work.append((child, items, index, f"{path}.{index}" if path else str(index)))
            container[slot] = items
        else:
            container[slot] = _scalar(value, path)
    return root[0]


def _scalar(value: Any, path: str) -> Any:
    field = path or "body"
    if isinstance(value, _BigInt) or (
        isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX
    ):
        raise InvalidRequest(f"invalid {field}: integer outside 64 bits", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"invalid {field}: number too large", field=field)
    return value
