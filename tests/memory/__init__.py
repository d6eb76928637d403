"""In-memory twins of the ledger's two ports (``ledger.ports``), for fast unit tests.

``MemoryLog`` is an ``EventLog`` and ``MemoryQueue`` a ``WorkQueue``: the same
contract suites (``tests/contracts``) run against them as against SQLite,
PostgreSQL, fakeredis and Redis, so a ``Ledger`` or a ``Worker`` built on them
behaves as on the real services, with no service at all (procrastinate's
``InMemoryConnector`` is the model).
"""

from ledger.ports import EventLog, WorkQueue
from tests.memory.log import MemoryLog
from tests.memory.queue import MemoryQueue


def _ports(log: MemoryLog, queue: MemoryQueue) -> tuple[EventLog, WorkQueue]:
    """Never called: ``mypy tests/memory`` checks the twins against the ports here."""
    return log, queue


__all__ = ["MemoryLog", "MemoryQueue"]
