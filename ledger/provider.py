"""What a payment provider answered: the outcome a handler returns, validated.

Pure: no IO. A handler returns ``ProviderResult(reference=…, fee=…, status=…)``,
or a mapping with those keys, or nothing (paid, no details). ``pending=True``
means the provider accepted the payout and will confirm it later: the job is
``submitted`` until a webhook or a poll confirms or fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidRequest
from ledger.money import MAX_AMOUNT
from ledger.text import check_text

MAX_REFERENCE_LENGTH = 200
MAX_STATUS_LENGTH = 64
_KEYS = frozenset({"reference", "fee", "status", "pending"})


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """The provider's answer to one payout attempt (or to a status look-up).

    ``reference`` is the provider's payout id, ``fee`` what the provider charged
    in minor units of the job's currency (reported beside the amount, never
    part of it), ``status`` the provider's own word for the payout's state.
    Invalid values raise ``InvalidRequest``.
    """

    reference: str | None = None
    fee: int | None = None
    status: str | None = None
    pending: bool = False

    def __post_init__(self) -> None:
        if self.reference is not None:
            _text(self.reference, "reference", MAX_REFERENCE_LENGTH)
        if self.status is not None:
            _text(self.status, "status", MAX_STATUS_LENGTH)
        if self.fee is not None and (
            isinstance(self.fee, bool)
            or not isinstance(self.fee, int)
            or not 0 <= self.fee <= MAX_AMOUNT
        ):
            raise InvalidRequest(
                f"invalid fee: must be an integer of minor units from 0 to {MAX_AMOUNT}",
                field="fee",
            )
        if not isinstance(self.pending, bool):
            raise InvalidRequest("invalid pending: must be true or false", field="pending")
        if self.pending and self.reference is None:
            raise InvalidRequest(
                "a pending result needs the provider's reference, to confirm it by",
                field="reference",
            )

    def as_data(self) -> dict[str, Any]:
        """The fields an event records (only those the provider gave)."""
        data: dict[str, Any] = {}
        if self.reference is not None:
            data["reference"] = self.reference
        if self.fee is not None:
            data["fee"] = self.fee
        if self.status is not None:
            data["status"] = self.status
        return data


def _text(value: object, field: str, max_length: int) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"invalid {field}: must be text", field=field)
    check_text(value, field, max_length=max_length)


def provider_result(value: object) -> ProviderResult | None:
    """A handler's return value as a ``ProviderResult`` (``None``: paid, nothing reported).

    A ``ProviderResult`` is taken as it is; a mapping holding any of its keys is
    read strictly (an unknown key is refused); any other value (``None``, or what
    handlers written before results existed returned) reports nothing.
    """
    if isinstance(value, ProviderResult):
        return value
    if isinstance(value, Mapping) and _KEYS.intersection(value):
        unknown = sorted(str(key) for key in value if key not in _KEYS)
        if unknown:
            raise InvalidRequest(
                f"a provider result has reference, fee, status and pending only (not {unknown})"
            )
        return ProviderResult(**{str(key): item for key, item in value.items()})
    return None


def provider_key(idempotency_key: str, payment_round: int) -> str:
    """The idempotency key the provider sees for a payment round.

    Round 1 is the job's own key; a later round (a reversed amount paid again)
    appends ``:round-N``, so the provider treats it as a new payout instead of
    answering with the one it returned.
    """
    return idempotency_key if payment_round <= 1 else f"{idempotency_key}:round-{payment_round}"
