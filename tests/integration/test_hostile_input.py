"""Hostile input at every edge (issue 21): bodies, identifiers, headers, tokens, exports.

Every refused request is checked to leave the events table as it was: the
``refused`` helper counts the rows before and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ledger.http import create_app
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings

TOKENS = {
    "auditor": "auditor-token-hostile-0001",
    "operator": "operator-token-hostile-0001",
    "service": "service-token-hostile-0001",
}
TOKEN_SPEC = ",".join(f"{role}:{token}" for role, token in TOKENS.items())
CAP = 4096

BODY: dict[str, Any] = {
    "userId": "user-1",
    "placeId": "place-1",
    "missionId": "mission-1",
    "amount": 10_000,
    "currency": "KRW",
    "idempotencyKey": "hostile-1",
    "metadata": {"qrToken": "secret-qr", "receiptId": "r-1"},
}
PROBLEM_KEYS = {"detail", "field", "errors"}


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    built = build_ledger(
        Settings(database_url=db_url, api_tokens=TOKEN_SPEC, max_body_bytes=CAP)
    )
    yield built
    built.close()


@pytest.fixture
def app(ledger: Ledger) -> FastAPI:
    return create_app(ledger)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def event_rows(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def refused(
    client: TestClient,
    ledger: Ledger,
    method: str,
    path: str,
    *,
    expect: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send one hostile request: ``expect`` comes back in the one problem shape, no event added."""
    before = event_rows(ledger)
    response = client.request(method, path, **kwargs)
    assert response.status_code == expect, response.text
    assert event_rows(ledger) == before
    body = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text and "SELECT" not in response.text
    return dict(body)


def enqueue(client: TestClient, **changes: Any) -> str:
    response = client.post("/api/settlements", json={**BODY, **changes}, headers=auth("service"))
    assert response.status_code == 201, response.text
    return str(response.json()["jobId"])


# -- the raw ASGI channel: what the server reads of a body ------------------------------


class Channel:
    """Feeds an app a body in chunks, counting how many bytes it pulled."""

    def __init__(self, chunk: bytes, chunks: int) -> None:
        self.chunk = chunk
        self.left = chunks
        self.pulled = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.left == 0:
            await asyncio.sleep(3600)  # the client waits: never reached when the app answers
        self.left -= 1
        self.pulled += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.left > 0}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


def call(app: FastAPI, channel: Channel, path: str, headers: dict[str, str]) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, channel.receive, channel.send))  # type: ignore[arg-type]


# -- bodies: the token first, then a cap, then strict JSON ----------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-known-token-xx"}])
def test_an_unauthenticated_body_is_never_read(app: FastAPI, headers: dict[str, str]) -> None:
    channel = Channel(b"x" * 65536, 800)  # 50 MB on offer
    call(app, channel, "/api/settlements", {**headers, "Content-Length": str(65536 * 800)})
    assert channel.status == 401
    assert channel.pulled == 0


def test_a_declared_length_over_the_cap_is_413_unread(app: FastAPI) -> None:
    channel = Channel(b"x" * 65536, 800)
    call(app, channel, "/api/settlements", {**auth("service"), "Content-Length": str(CAP + 1)})
    assert channel.status == 413
    assert channel.pulled == 0
    headers = dict(channel.sent[0]["headers"])
    assert headers[b"connection"] == b"close"


def test_a_chunked_body_is_cut_off_at_the_cap(app: FastAPI) -> None:
    channel = Channel(b"x" * 1024, 50_000)  # no Content-Length: Transfer-Encoding chunked
    call(app, channel, "/api/settlements", {**auth("service"), "Content-Type": "application/json"})
    assert channel.status == 413
    assert channel.pulled <= CAP + 1024


def test_over_the_cap_through_the_client(client: TestClient, ledger: Ledger) -> None:
    big = {**BODY, "metadata": {"pad": "x" * CAP}}
    body = refused(
        client, ledger, "POST", "/api/settlements", expect=413, json=big, headers=auth("service")
    )
    assert body["field"] is None and "LEDGER_MAX_BODY_BYTES" in body["detail"]


def test_a_bad_content_length_is_400(app: FastAPI) -> None:
    channel = Channel(b"{}", 1)
    call(app, channel, "/api/settlements", {**auth("service"), "Content-Length": "1e3"})
    assert channel.status == 400


def test_the_cap_is_a_setting() -> None:
    assert Settings().max_body_bytes == 64 * 1024
    assert Settings(max_body_bytes=2048).max_body_bytes == 2048


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"amount": 10000, "amount": 99999999}', "amount"),
        ('{"metadata": {"receiptId": "a", "receiptId": "b"}}', "metadata.receiptId"),
        (f'{{"metadata": {{"big": {2**64}}}}}', "metadata.big"),
        ('{"metadata": {"big": ' + "9" * 3000 + "}}", "metadata.big"),
        ('{"metadata": {"n": 1e400}}', "metadata.n"),
    ],
)
def test_json_that_breaks_the_rules_is_422_naming_the_field(
    client: TestClient, ledger: Ledger, text: str, field: str
) -> None:
    # the rest of a valid body around the hostile member
    head = '{"userId":"u","placeId":"p","missionId":"m","idempotencyKey":"dup",'
    if not text.startswith('{"amount"'):
        head += '"amount":100,'
    document = head + text[1:]
    body = refused(
        client,
        ledger,
        "POST",
        "/api/settlements",
        expect=422,
        content=document,
        headers={**auth("service"), "Content-Type": "application/json"},
    )
    assert body["field"] == field


@pytest.mark.parametrize(
    "content",
    [
        b'{"userId": "\xff\xfe"}',
        b"[" * 2000 + b"]" * 2000,
        b'{"userId": "u", "amount": 1',
        b'{"amount": NaN}',
        b"not json",
    ],
)
def test_text_that_is_not_json_is_400_without_a_field(
    client: TestClient, ledger: Ledger, content: bytes
) -> None:
    body = refused(
        client,
        ledger,
        "POST",
        "/api/settlements",
        expect=400,
        content=content,
        headers={**auth("service"), "Content-Type": "application/json"},
    )
    assert body["field"] is None and body["detail"].startswith("malformed JSON")


def test_a_requeue_body_is_parsed_strictly_too(client: TestClient, ledger: Ledger) -> None:
    body = refused(
        client,
        ledger,
        "POST",
        "/api/queue/dlq",
        expect=422,
        content=b'{"jobId": "a", "jobId": "b"}',
        headers={**auth("operator"), "Content-Type": "application/json"},
    )
    assert body["field"] == "jobId"


def test_a_strict_body_still_enqueues(client: TestClient, ledger: Ledger) -> None:
    job_id = enqueue(client, metadata={"n": 2**63 - 1, "f": 1.5})
    state = client.get(f"/api/jobs/{job_id}", headers=auth("service")).json()
    assert state["data"]["metadata"] == {"n": 2**63 - 1, "f": 1.5}


def test_a_token_given_to_two_roles_is_refused_at_start_up(db_url: str) -> None:
    from ledger.http.auth import BadTokenConfig

    spec = "auditor:same-token-0123456789,operator:same-token-0123456789"
    built = build_ledger(Settings(database_url=db_url, api_tokens=spec))
    try:
        with pytest.raises(BadTokenConfig, match="already given"):
            create_app(built)
    finally:
        built.close()


# -- the CLI's --metadata goes through the same parser ----------------------------------------


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ('{"receiptId": "a", "receiptId": "b"}', "metadata.receiptId"),
        (f'{{"n": {2**64}}}', "metadata.n"),
        ('{"n": 1', "metadata"),
    ],
)
def test_cli_metadata_is_strict(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metadata: str,
    field: str,
) -> None:
    from ledger.cli.main import main

    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    args = ["enqueue", "--user-id", "u", "--place-id", "p", "--mission-id", "m"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--amount", "5", "--metadata", metadata])
    assert done.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: invalid {field}: ")
