"""Currencies and amounts. Amounts are integers in the currency's minor unit."""

from __future__ import annotations

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
