"""The operator console in a real browser: Debian's Chromium driven by Playwright.

``ledger serve`` runs on a scratch ledger (PostgreSQL + Redis, a queue of its own)
holding jobs in every state; the test signs in as an operator and as an auditor
and works the pages as a person would. Screenshots land in
``$LEDGER_SCREENSHOTS`` (default: ``.artifacts/screenshots`` at the repository's
root), one per step, kept after the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ledger.lifecycle import JobStatus
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from ledger.worker import Worker, WorkerOptions
from tests.backends import REDIS_URL
from tests.factories import request
from tests.faults.handlers import mixed
from tests.queue_fixtures import free_port

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("LEDGER_SCREENSHOTS", ROOT / ".artifacts" / "screenshots"))
OPERATOR_TOKEN = "operator-token-0123456789"
AUDITOR_TOKEN = "auditor-token-0123456789"
TOKENS = f"auditor:{AUDITOR_TOKEN},operator:{OPERATOR_TOKEN},service:service-token-0123456789"

pytestmark = [
    pytest.mark.parametrize("db_backend", ["postgres"], indirect=True),
    # CI installs chromium (.ci/run): there a missing browser fails rather than skips
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs /usr/bin/chromium"
    ),
]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        redis_url=REDIS_URL,
        queue_name=f"t{uuid.uuid4().hex[:10]}",
        retry_base_seconds=0.01,
        retry_cap_seconds=0.02,
        default_max_attempts=1,
    )


@pytest.fixture
def seeded(settings: Settings) -> Iterator[Ledger]:
    """Jobs in every state: completed, dead-lettered, cancelled, delayed, waiting."""
    ledger = build_ledger(settings)
    for n in range(4):
        ledger.enqueue(request(idempotency_key=f"ok{n}", metadata={"mode": "ok"}))
    for n in range(3):
        ledger.enqueue(request(idempotency_key=f"bad{n}", metadata={"mode": "permanent"}))
    Worker(ledger, mixed, WorkerOptions(burst=True, sweep_seconds=0.05, idle_seconds=0.05)).run()
    ledger.cancel(
        ledger.enqueue(request(idempotency_key="gone")).job_id, actor="seed", reason="test"
    )
    ledger.enqueue(request(idempotency_key="later"), delay=timedelta(hours=1))
    ledger.enqueue(request(idempotency_key="waits"))
    yield ledger
    ledger.close()


@pytest.fixture
def server(settings: Settings, seeded: Ledger, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": settings.database_url,
        "LEDGER_REDIS_URL": REDIS_URL,
        "LEDGER_API_TOKENS": TOKENS,
        "LEDGER_QUEUE_NAME": settings.queue_name,
    }
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("ledger serve did not start: " + (tmp_path / "serve.log").read_text())
    yield base
    process.terminate()
    process.wait(10)
    log.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def signed_in(browser: Browser, base: str, token: str) -> Page:
    page = browser.new_context(base_url=base).new_page()
    page.goto("/sign-in")
    page.get_by_label("API token (operator or auditor)").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(base: str, path: str, token: str = OPERATOR_TOKEN) -> dict[str, object]:
    answer = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    body: dict[str, object] = answer.json()
    return body


def test_the_operator_works_the_console(browser: Browser, server: str, seeded: Ledger) -> None:
    page = signed_in(browser, server, OPERATOR_TOKEN)
    shot(page, "01-dashboard-operator")
    # the page's numbers are the API's numbers
    stats = api(server, "/api/queue/stats")["stats"]
    assert isinstance(stats, dict)
    for name in ("waiting", "delayed", "processing", "dlq", "completed", "cancelled", "total"):
        assert page.locator(f'td[data-stat="{name}"]').inner_text() == str(stats[name]), name
    # requeue one dead-lettered job: it leaves the table
    dead = page.locator("tr[data-job]").first.get_attribute("data-job")
    assert dead is not None
    page.get_by_role("button", name=f"Requeue job {dead}").click()
    expect(page.get_by_role("status")).to_contain_text(f"requeued {dead}")
    expect(page.locator(f'tr[data-job="{dead}"]')).to_have_count(0)
    shot(page, "02-requeued")
    # pause: workers stop claiming
    page.get_by_label("Reason for pausing").fill("provider down")
    page.get_by_role("button", name="Pause the queue").click()
    expect(page.get_by_test_id("queue-state")).to_contain_text("Paused")
    shot(page, "03-paused")
    stats_run = Worker(seeded, mixed, WorkerOptions(burst=True, sweep_seconds=0.05)).run()
    assert stats_run.claimed == 0 and stats_run.paused
    assert seeded.job(dead).status is JobStatus.WAITING
    # a timeline
    page.goto(f"/jobs/{dead}")
    events = seeded.store.read_stream(dead)
    expect(page.locator("li[data-event]")).to_have_count(len(events))
    shot(page, "04-timeline")
    # cancel from the job page
    page.get_by_label("Reason for cancelling").fill("duplicate payout")
    page.get_by_role("button", name="Cancel the job").click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    shot(page, "05-cancelled")
    # bulk cancel of the DLQ through its preview
    dlq = api(server, "/api/queue/stats")["stats"]
    assert isinstance(dlq, dict) and dlq["dlq"] == 2
    for _ in range(100):  # the list reads the projection, which serve's follower moves on
        page.goto("/jobs?status=dead")
        if "2 jobs" in page.get_by_test_id("job-count").inner_text():
            break
        time.sleep(0.1)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("bulk-count")).to_contain_text("2 jobs would be cancelled")
    shot(page, "06-bulk-preview")
    page.get_by_label("Reason").fill("outage clean-up")
    page.get_by_role("button", name="Confirm: cancel 2 jobs").click()
    expect(page.get_by_role("status")).to_contain_text("bulk cancel: 2 jobs")
    cancelled = api(server, "/api/queue/stats")["stats"]
    assert isinstance(cancelled, dict) and cancelled["dlq"] == 0
    # the job list: search by idempotency key
    page.goto("/jobs?q=waits")
    expect(page.get_by_test_id("job-count")).to_contain_text("1 jobs")
    shot(page, "07-jobs-search")
    # resume
    page.goto("/")
    page.get_by_label("Reason for resuming").fill("provider back")
    page.get_by_role("button", name="Resume the queue").click()
    expect(page.get_by_test_id("queue-state")).to_contain_text("Running")


def test_an_auditor_sees_no_controls_and_a_forged_post_is_refused(
    browser: Browser, server: str, seeded: Ledger
) -> None:
    page = signed_in(browser, server, AUDITOR_TOKEN)
    shot(page, "08-dashboard-auditor")
    assert page.get_by_role("button", name="Pause the queue").count() == 0
    assert page.get_by_role("button", name="Requeue").count() == 0
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    forged = page.request.post("/queue/pause", form={"csrf": csrf or "", "reason": "forged"})
    assert forged.status == 403  # the right CSRF token, the wrong role
    assert not seeded.controls().paused
    page.goto("/audit")
    page.get_by_role("button", name="Verify the whole log now").click()
    expect(page.get_by_role("heading", name="Verify: OK")).to_be_visible()
    shot(page, "09-audit-verified")
    operator = signed_in(browser, server, OPERATOR_TOKEN)
    no_token = operator.request.post("/queue/pause", form={"reason": "forged"})
    assert no_token.status == 403  # the right role, no CSRF token
    assert not seeded.controls().paused


def test_keyboard_and_labels(browser: Browser, server: str) -> None:
    page = signed_in(browser, server, OPERATOR_TOKEN)
    for path in ("/", "/jobs", "/jobs?status=dead", "/audit"):
        page.goto(path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                              && !(e.tagName === 'BUTTON' && e.innerText.trim()))
                 .map(e => e.outerHTML)"""
        )
        assert unlabelled == [], path
        assert page.locator("main h1").count() == 1, path
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    field = page.get_by_label("Reason for pausing")
    field.focus()
    page.keyboard.type("keyboard only")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("queue-state")).to_contain_text("Paused")
    shot(page, "10-keyboard-paused")
