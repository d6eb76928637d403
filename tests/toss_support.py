"""The Toss stub on a loopback port, a handler pointed at it, and settlements that name a seller."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from ledger.claims import ClaimedJob
from ledger.providers.toss.client import TossClient
from ledger.providers.toss.handler import TossPayouts
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.stub import StubToss
from ledger.providers.toss.stub_server import StubServer, serve_stub
from ledger.request import SettlementRequest
from ledger.service import Ledger
from tests.factories import request

SECRET = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"  # the docs' public test key
SECURITY = "a3f1" * 16
SELLER = "seller_a01kf0w9vdgezd8rdkrt43qvq3g"
#: the client gives up on a hanging call after this long; the stub hangs longer
CLIENT_TIMEOUT = 0.5


def settings(url: str, **overrides: Any) -> TossSettings:
    fields: dict[str, Any] = {
        "api_url": url,
        "secret_key": SecretStr(SECRET),
        "security_key": SecretStr(SECURITY),
        "timeout_seconds": CLIENT_TIMEOUT,
        "connect_timeout_seconds": CLIENT_TIMEOUT,
    }
    fields.update(overrides)
    return TossSettings(**fields)


@pytest.fixture
def toss() -> Iterator[StubServer]:
    server = serve_stub(StubToss(SECRET, bytes.fromhex(SECURITY), hang_seconds=1.5))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def payouts(toss: StubServer, sleeps: list[float]) -> Iterator[TossPayouts]:
    handler = TossPayouts(lambda: TossClient(settings(toss.url), sleep=sleeps.append))
    try:
        yield handler
    finally:
        handler.close()


def toss_request(key: str = "k1", amount: int = 10_000, seller: str = SELLER) -> SettlementRequest:
    return request(idempotency_key=key, amount=amount, metadata={"tossSellerId": seller})


def claim_one(ledger: Ledger) -> ClaimedJob:
    (held,) = ledger.claim("w1", 1, timedelta(seconds=30))
    return held
