"""``ledger worker --handler ledger.providers.toss:payout`` loads a handler with poll and cancel."""

from __future__ import annotations

from ledger.handler import load_handler, provider_call
from ledger.providers.toss import TossPayouts


def test_the_toss_handler_loads_by_its_spec_with_poll_and_cancel() -> None:
    handler = load_handler("ledger.providers.toss:payout")
    assert isinstance(handler, TossPayouts)
    assert provider_call(handler, "poll") is not None
    assert provider_call(handler, "cancel") is not None
