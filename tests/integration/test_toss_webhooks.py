"""``POST /api/webhooks/toss``: signed deliveries from the stub, and everything else refused.

Bad input (bad signature, stale, unknown type, malformed JSON, 1 MB) gets a 4xx
and appends nothing; duplicates change nothing; a final status that arrives
before our ``submitted`` is answered 409 and redelivered; unknown payouts and
seller changes are kept for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ledger.handler import run_handler
from ledger.http import create_app
from ledger.http.app import app_from_environment, toss_webhooks
from ledger.lifecycle import JobStatus
from ledger.providers.toss.handler import TossPayouts
from ledger.providers.toss.inbox import WebhookInbox
from ledger.providers.toss.stub_server import StubServer
from ledger.schema import events as events_table
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.integration.test_http import TOKEN_SPEC, auth
from tests.queue_fixtures import on_stacks
from tests.toss_support import SECURITY, claim_one, settings, toss_request

pytestmark = on_stacks([("sqlite", "fakeredis"), ("postgres", "redis")])
PATH = "/api/webhooks/toss"


@pytest.fixture
def client(ledger: Ledger, toss: StubServer) -> Iterator[TestClient]:
    receiver = toss_webhooks(ledger, settings(toss.url))
    with TestClient(create_app(ledger, toss=receiver)) as test_client:
        toss.stub.deliver = lambda body, headers: (
            test_client.post(PATH, content=body, headers=headers).status_code
        )
        yield test_client


def log_size(ledger: Ledger) -> int:
    with ledger.engine.connect() as connection:
        count = sa.select(sa.func.count()).select_from(events_table)
        return int(connection.execute(count).scalar_one())


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The refusal lines: the body guard's or the Toss receiver's."""
    names = ("ledger.http.body", "ledger.providers.toss.webhooks")
    return [r for r in caplog.records if r.name in names and r.levelno == logging.WARNING]


def submitted(ledger: Ledger, payouts: TossPayouts, key: str = "k1") -> tuple[str, str]:
    ledger.enqueue(toss_request(key))
    (recorded,) = ledger.record([run_handler(payouts, claim_one(ledger))])
    assert recorded.state is not None and recorded.state.status is JobStatus.SUBMITTED
    assert recorded.state.reference is not None
    return recorded.job_id, recorded.state.reference


def test_completed_confirms_once_however_often_it_is_delivered(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, client: TestClient
) -> None:
    job_id, payout_id = submitted(ledger, payouts)
    toss.stub.switches.webhook_copies = 3
    toss.stub.complete(payout_id)
    assert [status for _, status in toss.stub.delivered] == [200, 200, 200]
    job = ledger.job(job_id)
    assert job.status is JobStatus.COMPLETED and job.reference == payout_id
    types = [event.type.value for event in ledger.store.read_stream(job_id)]
    assert types.count("completed") == 1
    assert toss.stub.double_payments() == 0


def test_failed_fails_the_attempt_and_the_retry_pays_a_new_payout_once(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, client: TestClient
) -> None:
    job_id, payout_id = submitted(ledger, payouts)
    toss.stub.fail(payout_id, "PROVIDER_ERROR", "temporary")
    job = ledger.job(job_id)
    assert job.status is JobStatus.WAITING and "PROVIDER_ERROR" in (job.last_error or "")
    toss.stub.redeliver()  # a late copy of the FAILED changes nothing
    assert ledger.job(job_id).version == job.version


def test_a_final_status_before_submitted_is_refused_and_redelivered(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, client: TestClient
) -> None:
    ledger.enqueue(toss_request())
    held = claim_one(ledger)
    outcome = run_handler(payouts, held)  # Toss accepted; the worker has not recorded it yet
    assert outcome.result is not None and outcome.result.reference is not None
    before = log_size(ledger)
    toss.stub.fail(outcome.result.reference, "PROVIDER_ERROR", "temporary")
    assert toss.stub.delivered[-1][1] == 409 and log_size(ledger) == before
    ledger.record([outcome])
    assert ledger.job(held.id).status is JobStatus.SUBMITTED
    assert toss.stub.redeliver() == 1  # Toss's retry finds the payout submitted
    assert ledger.job(held.id).status is JobStatus.WAITING


def test_completed_at_acceptance_with_the_webhook_first_pays_once(
    ledger: Ledger, toss: StubServer, payouts: TossPayouts, client: TestClient
) -> None:
    toss.stub.switches.complete_on_accept = True
    toss.stub.switches.webhook_before_answer = True
    ledger.enqueue(toss_request())
    held = claim_one(ledger)
    outcome = run_handler(payouts, held)
    assert outcome.result is not None and not outcome.result.pending
    assert toss.stub.delivered[-1][1] == 409
    ledger.record([outcome])
    assert toss.stub.redeliver() == 1
    assert ledger.job(held.id).status is JobStatus.COMPLETED
    assert toss.stub.double_payments() == 0


def test_unknown_payouts_and_seller_changes_are_kept_for_an_operator(
    ledger: Ledger, toss: StubServer, client: TestClient
) -> None:
    before = log_size(ledger)
    stray = toss.stub.create(
        {"refPayoutId": "elsewhere", "destination": "seller_x", "scheduleType": "EXPRESS",
         "amount": {"currency": "KRW", "value": 500}, "metadata": {}}
    )  # fmt: skip
    toss.stub.complete(stray["id"])
    toss.stub.seller_changed("seller_x", "KYC_REQUIRED")
    assert [status for _, status in toss.stub.delivered] == [200, 200]
    kept = WebhookInbox(ledger.engine).for_operators()
    assert {entry.outcome for entry in kept} == {"unknown_payout", "seller"}
    assert log_size(ledger) == before


@pytest.mark.parametrize("fault", ["bad_signature", "stale", "unsigned"])
def test_an_unverified_webhook_is_refused_with_401_and_records_nothing(
    ledger: Ledger,
    toss: StubServer,
    payouts: TossPayouts,
    client: TestClient,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id, payout_id = submitted(ledger, payouts)
    before = log_size(ledger)
    body = orjson.dumps(
        {"eventId": "evt_1", "eventType": "payout.changed", "entityType": "payout",
         "entityBody": {**toss.stub.payouts[payout_id], "status": "COMPLETED"}}
    )  # fmt: skip
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    toss.stub.switches.bad_signature = fault == "bad_signature"
    headers = toss.stub.headers(body, old if fault == "stale" else None)
    if fault == "unsigned":
        headers = {"Content-Type": "application/json"}
    with caplog.at_level(logging.WARNING):
        response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert len(refusals(caplog)) == 1
    assert log_size(ledger) == before and ledger.job(job_id).status is JobStatus.SUBMITTED
    assert WebhookInbox(ledger.engine).entries() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"eventType": "payment.changed", "entityBody": {}}', 400),
        (b'{"eventType": "payout.changed", "entityBody": {"id": 1}}', 400),
        (b'{"eventType": "payout.changed", "eventType": "x", "entityBody": {}}', 422),
        (b"{not json", 400),
        (b"[]", 400),
    ],
)
def test_bad_input_gets_a_4xx_appends_nothing_and_logs_one_line(
    ledger: Ledger,
    toss: StubServer,
    client: TestClient,
    body: bytes,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = log_size(ledger)
    with caplog.at_level(logging.WARNING):
        response = client.post(PATH, content=body, headers=toss.stub.headers(body))
    assert response.status_code == status
    assert len(refusals(caplog)) == 1
    assert log_size(ledger) == before and WebhookInbox(ledger.engine).entries() == []


def test_a_1_mb_body_is_refused_unread(
    ledger: Ledger, toss: StubServer, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"eventType": "payout.changed", "pad": "' + b"x" * 1_048_576 + b'"}'
    with caplog.at_level(logging.WARNING):
        response = client.post(PATH, content=body, headers=toss.stub.headers(body))
    assert response.status_code == 413
    assert len(refusals(caplog)) == 1
    assert WebhookInbox(ledger.engine).entries() == []


def test_webhooks_need_no_bearer_token_and_404_when_toss_is_not_configured(
    db_url: str, redis_backend: str, toss: StubServer
) -> None:
    del redis_backend  # the embedded queue: only the database varies
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC))
    try:
        body = b'{"eventType": "seller.changed", "entityBody": {"id": "seller_x"}}'
        with TestClient(create_app(built)) as bare:
            assert bare.post(PATH, content=body, headers=toss.stub.headers(body)).status_code == 404
        receiver = toss_webhooks(built, settings(toss.url))
        with TestClient(create_app(built, toss=receiver)) as configured:
            answer = configured.post(PATH, content=body, headers=toss.stub.headers(body))
            assert answer.status_code == 200 and answer.json()["outcome"] == "seller"
            inbox = "/api/providers/toss/inbox"
            assert configured.get(inbox).status_code == 401  # reading it takes a token
            (entry,) = configured.get(inbox, headers=auth("operator")).json()
            assert entry["outcome"] == "seller" and entry["eventType"] == "seller.changed"
    finally:
        built.close()


def test_ledger_serve_mounts_the_receiver_from_the_environment(
    db_url: str, redis_backend: str, toss: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    del redis_backend  # the embedded queue: only the database varies
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    monkeypatch.setenv("LEDGER_TOSS_SECURITY_KEY", SECURITY)
    body = b'{"eventType": "seller.changed", "entityBody": {"id": "seller_x"}}'
    app = app_from_environment()
    try:
        with TestClient(app) as served:
            answer = served.post(PATH, content=body, headers=toss.stub.headers(body))
    finally:
        app.state.wiring.ledger.close()  # the server's process would end here
    assert answer.status_code == 200 and answer.json()["outcome"] == "seller"
