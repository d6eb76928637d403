"""Handlers for worker processes started by tests (``--handler tests.faults.handlers:…``).

The job's ``metadata["mode"]`` picks the behaviour, so one worker can run a mix.
"""

from __future__ import annotations

import asyncio
import os
import time

from ledger.errors import PermanentFailure
from ledger.service import ClaimedJob


def mixed(job: ClaimedJob) -> None:
    """``ok`` (default), ``flaky`` (fails its first attempt), ``permanent``, ``sleep``."""
    mode = job.request.metadata.get("mode", "ok")
    if mode == "flaky" and job.attempt == 1:
        raise RuntimeError("gateway timeout")
    if mode == "permanent":
        raise PermanentFailure("account closed")
    if mode == "sleep":
        time.sleep(float(job.request.metadata.get("seconds", 1.0)))


def ok(job: ClaimedJob) -> None:
    """Succeed at once."""


def slow(job: ClaimedJob) -> None:
    """Sleep ``LEDGER_TEST_SLEEP`` seconds (default 0.05), then succeed."""
    time.sleep(float(os.environ.get("LEDGER_TEST_SLEEP", "0.05")))


async def async_ok(job: ClaimedJob) -> None:
    await asyncio.sleep(0)
