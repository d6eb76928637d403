"""The one no-op job every system runs, and how the harness sees it finish.

Each terminal outcome (success, or the last failing attempt before dead-letter)
appends one fixed-width time stamp to a shared marks file opened with
``O_APPEND`` (one ``write`` syscall, atomic across processes, a few µs). The
parent counts the file's size to know when a drain is done, and reads the
stamps for "first claim to last completion". This costs every system the same
and needs nothing from their result backends.

Retry-heavy mix: job ``i`` is ``dead`` when ``i % 100 == 0`` (1 %: fails every
attempt, so it is dead-lettered after ``MAX_ATTEMPTS``), ``flaky`` when
``i % 10 == 1`` (10 %: fails twice, succeeds on the third attempt), else ``ok``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MARKS_ENV = "BENCH_MARKS_FILE"
MAX_ATTEMPTS = 3
_STAMP = b"%17.6f\n"
STAMP_BYTES = 18

#: pid → fd of the marks file (a forked child opens its own)
_fds: dict[int, int] = {}


class JobFailed(Exception):
    """The planned failure of a flaky or dead job."""


def kind_of(index: int, *, retry_mix: bool) -> str:
    if not retry_mix:
        return "ok"
    if index % 100 == 0:
        return "dead"
    if index % 10 == 1:
        return "flaky"
    return "ok"


def _marks_fd() -> int:
    pid = os.getpid()
    fd = _fds.get(pid)
    if fd is None:
        fd = os.open(os.environ[MARKS_ENV], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fds[pid] = fd
    return fd


def mark() -> None:
    os.write(_marks_fd(), _STAMP % time.time())


def run_job(kind: str, attempt: int) -> None:
    """The job body. ``attempt`` counts from 1. Raises ``JobFailed`` when planned."""
    if kind == "ok" or (kind == "flaky" and attempt >= MAX_ATTEMPTS):
        mark()
        return
    if attempt >= MAX_ATTEMPTS:
        mark()  # the last attempt of a dead job: a terminal outcome too
    raise JobFailed(f"planned failure of a {kind} job, attempt {attempt}")


def marks_count(path: Path) -> int:
    try:
        return path.stat().st_size // STAMP_BYTES
    except FileNotFoundError:
        return 0


def marks_span(path: Path) -> tuple[float, float]:
    """(first, last) stamp in the marks file."""
    stamps = [float(line) for line in path.read_bytes().splitlines() if line.strip()]
    return min(stamps), max(stamps)


def expected_attempts(n: int, *, retry_mix: bool) -> int:
    total = 0
    for index in range(n):
        kind = kind_of(index, retry_mix=retry_mix)
        total += 1 if kind == "ok" else MAX_ATTEMPTS
    return total
