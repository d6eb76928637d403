"""What ``ledger serve`` runs beside the API.

The projection follower keeps the live read models current (every server process
runs one; on PostgreSQL only the leader writes, ``projections.leader``). On the
embedded default, one machine and one command, a worker drains the in-process
queue when a handler is configured. Both stop with the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ledger.compose.metrics import Metrics
from ledger.errors import DatabaseUnavailable
from ledger.handler import load_handler
from ledger.service import Ledger
from ledger.worker import Worker, WorkerOptions
from projections.runner import Projector

log = logging.getLogger("ledger.http")


@dataclass
class Background:
    """Threads started at start-up and stopped (gracefully) at shutdown."""

    ledger: Ledger
    metrics: Metrics
    handler: str | None = None
    #: the embedded default (fakeredis in this process): a worker belongs here
    embedded: bool = True
    concurrency: int = 4
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _worker: Worker | None = None

    def start(self) -> None:
        projector = Projector(self.ledger.reader)
        self._spawn(
            "ledger-projector",
            lambda: projector.follow(
                self._stop, poll_seconds=0.5, on_unavailable=_one_line_per_change()
            ),
        )
        if self.handler is None:
            if not self.embedded:
                return  # workers run as ``ledger worker`` processes
            log.warning("no LEDGER_HANDLER: jobs wait until a worker with a handler runs")
            return
        options = WorkerOptions(
            concurrency=self.concurrency,
            lease=timedelta(seconds=self.ledger.settings.lease_seconds),
            sweep_seconds=self.ledger.settings.sweep_seconds,
        )
        self._worker = Worker(
            self.ledger,
            load_handler(self.handler),
            options,
            on_attempt=self.metrics.observe_attempt,
        )
        self._spawn("ledger-worker", self._worker.run)

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()
        for thread in self._threads:
            thread.join(timeout=60)

    def _spawn(self, name: str, target: Callable[[], object]) -> None:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("%s stopped on an error", name)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)


def _one_line_per_change() -> Callable[[DatabaseUnavailable], None]:
    """Report a database that is away once, not at every poll while it stays away."""
    last: list[str] = []

    def report(error: DatabaseUnavailable) -> None:
        if last != [error.message]:
            last[:] = [error.message]
            log.warning("projections wait for the database: %s", error.message)

    return report
