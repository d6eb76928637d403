"""Steps that fail and are retried: one log line when a failure starts, one when it ends."""

from __future__ import annotations

import logging
import threading

from ledger.errors import LedgerError

log = logging.getLogger("ledger.worker")


class Trouble:
    """Steps that fail: one line when one starts failing (or fails another way), one when it
    works again, instead of a line per retry while a backend is away."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}
        self._lock = threading.Lock()

    def failed(self, what: str, error: Exception) -> None:
        kind = type(error).__name__
        with self._lock:
            repeated = self._failing.get(what) == kind
            self._failing[what] = kind
        if not repeated or not isinstance(error, LedgerError):
            report(what, error)

    def worked(self, what: str) -> None:
        with self._lock:
            was = self._failing.pop(what, None)
        if was is not None:
            log.info("%s works again", what)


def report(what: str, error: Exception) -> None:
    """A ledger error is expected (a backend is down): one line. Anything else: a traceback."""
    if isinstance(error, LedgerError):
        log.warning("%s failed (%s); retrying", what, error.message)
    else:
        log.exception("%s failed unexpectedly; retrying", what)
