"""``python -m bench.timed_worker OUT.json <ledger args>``: the ledger CLI with the append
lock timed (``bench.process_costs._timed_opening``); at exit, the waits and holds (seconds)
go to OUT.json. For ``bench.ceiling``.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

from bench.process_costs import _HOLDS, _WAITS, _timed_opening
from ledger.cli.main import main


def _dump(out: Path) -> None:
    out.write_text(json.dumps({"waits": _WAITS, "holds": _HOLDS}), encoding="utf-8")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    _timed_opening()
    atexit.register(_dump, target)
    main(sys.argv[2:])
