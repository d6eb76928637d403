"""The settlement after the queue over HTTP: cancel, reverse, refund, repay (operator)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.claims import Outcome
from ledger.http import create_app
from ledger.provider import ProviderResult
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.integration.test_http import TOKEN_SPEC, auth, enqueue

OPERATOR = auth("operator")


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, Ledger]]:
    """The app and the ledger behind it, with the role tokens of test_http."""
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC))
    yield TestClient(create_app(built)), built
    built.close()


def paid(client: TestClient, ledger: Ledger, key: str = "k1") -> str:
    job_id = enqueue(client, idempotencyKey=key)
    (held,) = ledger.claim("w1", 1, timedelta(seconds=30))
    ledger.record([Outcome(held, result=ProviderResult(reference="po_1", fee=15, status="PAID"))])
    return job_id


def post(client: TestClient, job_id: str, action: str, **body: object) -> tuple[int, Any]:
    response = client.post(f"/api/jobs/{job_id}/{action}", json=body, headers=OPERATOR)
    return response.status_code, response.json()


def events(ledger: Ledger, job_id: str) -> list[str]:
    return [event.type.value for event in ledger.store.read_stream(job_id)]


def test_the_job_shows_its_money_and_the_providers_outcome(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    job_id = paid(client, ledger)
    body = client.get(f"/api/jobs/{job_id}", headers=OPERATOR).json()
    assert body["state"] == "completed"
    assert body["provider"] == {"reference": "po_1", "fee": 15, "status": "PAID"}
    assert body["money"] == {
        "currency": "KRW",
        "amount": 10_000,
        "paid": 10_000,
        "reversed": 0,
        "refunded": 0,
        "net": 10_000,
    }
    history = client.get(f"/api/jobs/{job_id}/history", headers=OPERATOR).json()
    assert history["events"][-1]["data"]["reference"] == "po_1"


def test_reverse_and_refund_with_their_refusals(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    job_id = paid(client, ledger)
    code, body = post(client, job_id, "reverse", amount=3_000, reason="bounced", reference="rv1")
    assert (code, body["reversed"], body["net"], body["appended"]) == (200, 3_000, 7_000, True)
    code, body = post(client, job_id, "reverse", amount=3_000, reason="bounced", reference="rv1")
    assert (code, body["appended"]) == (200, False)
    code, body = post(client, job_id, "reverse", amount=10, reason="bounced", reference="rv1")
    assert code == 409 and "rv1" in body["detail"]
    code, body = post(client, job_id, "refund", amount=7_001, reason="too much")
    assert code == 422 and "cannot come back" in body["detail"]
    code, body = post(client, job_id, "refund", amount=1, reason="x", currency="USD")
    assert code == 422 and body["field"] == "currency"
    for amount in (0, -5, "5", 1.5):
        code, body = post(client, job_id, "refund", amount=amount, reason="x")
        assert code == 422, amount
    code, body = post(client, job_id, "refund", amount=2_000, reason="correction", key="rf-1")
    assert (code, body["refunded"], body["net"]) == (200, 2_000, 5_000)
    code, _ = post(client, "no-such-job", "refund", amount=1, reason="x")
    assert code == 404
    assert events(ledger, job_id)[-2:] == ["reversed", "refunded"]


def test_cancel_waiting_refuse_in_flight(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    waiting = enqueue(client, idempotencyKey="wait")
    code, body = post(client, waiting, "cancel", reason="fraud")
    assert (code, body["status"]) == (200, "cancelled")
    running = enqueue(client, idempotencyKey="run")
    ledger.claim("w1", 1, timedelta(seconds=30))
    code, body = post(client, running, "cancel", reason="fraud")
    assert code == 409 and "attempt 1" in body["detail"]
    assert events(ledger, running) == ["enqueued", "attempted"]
    code, body = post(client, running, "cancel")
    assert code == 422  # the reason is required
    last = ledger.store.read_stream(waiting)[-1]
    assert last.actor == "http:operator" and last.data["reason"] == "fraud"


def test_repay_a_reversed_amount(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    job_id = paid(client, ledger)
    code, _ = post(client, job_id, "repay", reason="nothing to repay")
    assert code == 409
    post(client, job_id, "reverse", amount=10_000, reason="account closed")
    code, body = post(client, job_id, "repay", reason="new account")
    assert (code, body["status"], body["round"]) == (200, "waiting", 2)


@pytest.mark.parametrize("role", ["auditor", "service"])
def test_only_operators_act(api: tuple[TestClient, Ledger], role: str) -> None:
    client, ledger = api
    job_id = paid(client, ledger)
    response = client.post(
        f"/api/jobs/{job_id}/refund", json={"amount": 1, "reason": "x"}, headers=auth(role)
    )
    assert response.status_code == 403
    assert events(ledger, job_id)[-1] == "completed"
