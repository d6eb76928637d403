"""Currencies and amounts. Amounts are integers in the currency's minor unit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iso4217 import Currency

#: The largest amount accepted, in minor units (10**15 KRW is far beyond any payout).
MAX_AMOUNT = 10**15


def minor_unit_exponent(code: str) -> int:
    """Decimals of an ISO 4217 currency (KRW 0, USD 2, KWD 3).

    Raises ``ValueError`` for anything that is not an assigned, upper-case code of
    a currency with a minor unit (``XXX``, gold ``XAU`` and the like are refused:
    they cannot be paid out).
    """
    if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
        raise ValueError(f"currency must be a 3-letter upper-case ISO 4217 code, not {code!r}")
    try:
        currency = Currency(code)
    except ValueError:
        raise ValueError(f"{code!r} is not an assigned ISO 4217 currency code") from None
    exponent = currency.exponent
    if exponent is None:
        raise ValueError(f"{code!r} has no minor unit (not a payable currency)")
    return int(exponent)


def format_amount(amount: int, currency: str) -> str:
    """Human form of a minor-unit amount, without floats: 123456 USD → '1234.56 USD'."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exponent)
    text = f"{whole:,}" if exponent == 0 else f"{whole:,}.{frac:0{exponent}d}"
    return f"{sign}{text} {currency}"


def format_amounts(value: Any, currency: str | None = None) -> Any:
    """A JSON-like record for a person: every ``amount`` beside a ``currency`` formatted.

    Nested records inherit the currency of the record around them (a mismatch's
    ``{"ledger": {"amount": …, "currency": …}}`` or a line with its own). JSON
    output keeps integers in minor units; this is only for text.
    """
    if isinstance(value, list):
        return [format_amounts(item, currency) for item in value]
    if not isinstance(value, Mapping):
        return value
    own = value.get("currency")
    here = own if isinstance(own, str) else currency
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "amount" and isinstance(item, int) and not isinstance(item, bool) and here:
            out[key] = _formatted(item, here)
        else:
            out[key] = format_amounts(item, here)
    return out


def _formatted(amount: int, currency: str) -> str:
    try:
        return format_amount(amount, currency)
    except ValueError:  # not a payable currency: say the minor units plainly
        return f"{amount} (minor units) {currency}"
