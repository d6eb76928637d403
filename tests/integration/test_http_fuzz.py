"""Schemathesis against the app's own OpenAPI: no generated input gives a 5xx.

The schema is loaded at import time (schemathesis parametrizes at collection), so
the app runs over its own freshly migrated SQLite file in a temporary folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ledger import migrate
from ledger.http import create_app
from ledger.service import build_ledger
from ledger.settings import Settings

_folder = Path(tempfile.mkdtemp(prefix="ledger-fuzz-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
_url = f"sqlite:///{_folder / 'fuzz.db'}"
migrate.upgrade(_url)
_ledger = build_ledger(Settings(database_url=_url))
atexit.register(_ledger.close)

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_ledger))


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "40")),
    derandomize=not os.environ.get("LEDGER_FUZZ_EXAMPLES"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
