"""The console's pages and forms over HTTP (SQLite and PostgreSQL): sign-in, the
cookie's flags, CSRF and role on every form that changes anything."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.http import create_app
from ledger.lifecycle import JobStatus
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from projections.runner import Projector
from tests.factories import request
from tests.integration.test_http import TOKEN_SPEC, TOKENS


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, Ledger]]:
    built = build_ledger(Settings(database_url=db_url, api_tokens=TOKEN_SPEC))
    yield TestClient(create_app(built), base_url="http://127.0.0.1"), built
    built.close()


def sign_in(client: TestClient, role: str) -> str:
    """Sign in as ``role``; the CSRF token of its pages."""
    answer = client.post("/sign-in", data={"token": TOKENS[role]}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None
    return found.group(1)


def test_pages_need_a_session(api: tuple[TestClient, Ledger]) -> None:
    client, _ = api
    for path in ("/", "/jobs", "/audit", "/fragments/stats"):
        answer = client.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in"), path
    refused = client.post("/sign-in", data={"token": TOKENS["service"]}, follow_redirects=False)
    assert refused.headers["location"] == "/sign-in?failed=1"


def test_an_operator_acts_through_forms_with_csrf(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    csrf = sign_in(client, "operator")
    job_id = ledger.enqueue(request()).job_id
    assert client.post("/queue/pause", data={"reason": "x"}).status_code == 403
    assert client.post("/queue/pause", data={"csrf": "forged", "reason": "x"}).status_code == 403
    assert not ledger.controls().paused
    done = client.post("/queue/pause", data={"csrf": csrf, "reason": "provider down"})
    assert done.status_code == 200 and "Paused" in done.text
    assert ledger.controls().actor == "console:operator"
    page = client.get(f"/jobs/{job_id}")
    assert "Cancel the job" in page.text and page.text.count('data-event="') == 1
    cancelled = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf, "reason": "dup"})
    assert "cancelled " + job_id in cancelled.text
    assert ledger.job(job_id).status is JobStatus.CANCELLED
    again = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf, "reason": "dup"})
    assert again.status_code == 200
    refused = client.post(f"/jobs/{job_id}/requeue", data={"csrf": csrf, "reason": "r"})
    assert "refused:" in refused.text


def test_an_auditor_sees_no_controls_and_cannot_post_one(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    csrf = sign_in(client, "auditor")
    page = client.get("/").text
    assert "Pause the queue" not in page and "Requeue" not in page
    answer = client.post("/queue/pause", data={"csrf": csrf, "reason": "forged"})
    assert answer.status_code == 403
    assert not ledger.controls().paused
    verified = client.post("/audit/verify", data={"csrf": csrf})
    assert verified.status_code == 200 and "Verify:" in verified.text


def test_the_job_list_filters_by_amount_and_time(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    sign_in(client, "operator")
    ledger.enqueue(request(idempotency_key="small", amount=1_000))
    ledger.enqueue(request(idempotency_key="large", amount=90_000))
    Projector(ledger.store).catch_up()
    assert "1 jobs" in client.get("/jobs?min=50000").text
    assert "2 jobs" in client.get("/jobs?from=2000-01-01T00:00Z&max=90000").text
    assert "0 jobs" in client.get("/jobs?from=2999-01-01T00:00Z").text
    refused = client.get("/jobs?min=lots")
    assert refused.status_code == 200 and "refused: invalid min" in refused.text
