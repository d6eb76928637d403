"""Schemathesis against the app's own OpenAPI: every operation, every role, both backends.

Every answer must conform to the document (status code documented, content type,
headers, body schema) and none may be a 5xx; a refused request (4xx) must leave
the events table as it was. Hypothesis is derandomized (a fixed seed per test)
and capped at ``LEDGER_FUZZ_EXAMPLES`` examples per operation, role and backend
(default 12: about 2,500 requests in all). With ``LEDGER_FUZZ_LOG=path`` every
answer's status is appended to that file, for counting.

The schema is loaded at import time (schemathesis parametrizes at collection),
from an app over its own freshly migrated SQLite file; the requests go to a
module-scoped app per backend, seeded with jobs in every state.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger import migrate
from ledger.http import create_app
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.backends import SqliteTemplate, database_url
from tests.conftest import DATABASE_BACKENDS
from tests.factories import request as settlement

TOKENS = {
    "auditor": "auditor-token-fuzz-000001",
    "operator": "operator-token-fuzz-00001",
    "service": "service-token-fuzz-000001",
}
TOKEN_SPEC = ",".join(f"{role}:{token}" for role, token in TOKENS.items())
ROLES = [*TOKENS, "none"]
EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

_folder = Path(tempfile.mkdtemp(prefix="ledger-fuzz-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
_url = f"sqlite:///{_folder / 'schema.db'}"
migrate.upgrade(_url)
_ledger = build_ledger(Settings(database_url=_url, api_tokens=TOKEN_SPEC))
atexit.register(_ledger.close)

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_ledger))


def seed(ledger: Ledger) -> None:
    """Jobs waiting, completed and dead-lettered, so reads and requeues find something."""
    for n in range(6):
        ledger.enqueue(settlement(idempotency_key=f"seed-{n}", amount=100 + n), actor="seed")
    claimed = ledger.claim("seed-worker", 4, timedelta(seconds=30))
    jobs = sorted(claimed, key=lambda job: job.request.amount)
    for job in jobs[:2]:
        ledger.complete(job, job.attempt)
    for job in jobs[2:]:
        ledger.fail(job, job.attempt, "gateway said no", retryable=False)


@pytest.fixture(scope="module", params=DATABASE_BACKENDS)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: SqliteTemplate,
) -> Iterator[tuple[Ledger, FastAPI]]:
    with database_url(request.param, tmp_path_factory.mktemp("fuzz"), sqlite_template) as url:
        ledger = build_ledger(Settings(database_url=url, api_tokens=TOKEN_SPEC))
        seed(ledger)
        yield ledger, create_app(ledger)
        ledger.close()


def event_rows(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def record(status: int) -> None:
    target = os.environ.get("LEDGER_FUZZ_LOG")
    if target:
        with open(target, "a", encoding="utf-8") as log:
            log.write(f"{status}\n")


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_conforms(
    case: schemathesis.Case, role: str, served: tuple[Ledger, FastAPI]
) -> None:
    ledger, app = served
    headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role in TOKENS else {}
    before = event_rows(ledger)
    response = case.call(app=app, headers=headers)
    record(response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs={"app": app})
    if response.status_code >= 400:
        assert event_rows(ledger) == before, "a refused request appended events"
