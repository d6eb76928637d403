"""Enqueue one job and die between the SQL commit and the Redis push (exit code 3).

``python -m tests.faults.crash_enqueue KEY`` with the ``LEDGER_*`` environment of
the test. The push is replaced by ``os._exit``: the process ends abruptly, as a
``kill -9`` at that instant would end it, with the log ahead of Redis.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from ledger.queue import HotQueue
from ledger.service import build_ledger
from ledger.settings import Settings
from tests.factories import request


def crash(*_args: object, **_kwargs: object) -> NoReturn:
    os._exit(3)


def main() -> None:
    ledger = build_ledger(Settings())
    HotQueue.push = crash  # type: ignore[method-assign,assignment]
    ledger.enqueue(request(idempotency_key=sys.argv[1]))
    sys.exit("the push was not reached")


if __name__ == "__main__":
    main()
