"""Run one read-side workload in a child process, so its peak RSS is its own.

``python -m bench.child rebuild|verify URL`` prints one JSON object:
``{"events": …, "seconds": …, "peak_rss_mb": …}`` (peak RSS: the child's own
``VmHWM``, i.e. the whole child: interpreter, imports, work;
``verify-2`` also reports ``workers_peak_rss_mb``, the largest of its workers).
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import orjson

from ledger.db import create_engine
from ledger.store import EventStore


def rebuild(url: str) -> int:
    """Full rebuild of every projection from event 0 (``projections.runner.rebuild``)."""
    # imported here, on the clock, as in every earlier result file (73 ms here)
    from projections import runner

    engine = create_engine(url)
    try:
        # rebuild returns the live position reached: the event count of a gap-free log
        return int(runner.rebuild(EventStore(engine)))
    finally:
        engine.dispose()


def verify(url: str, workers: int = 1) -> int:
    """The tamper-evidence walk over the whole log (``ledger.audit.verify.verify_log``)."""
    from ledger.audit import verify as audit_verify

    engine = create_engine(url)
    try:
        result = audit_verify.verify_log(engine, workers=workers)
        if not result.ok:
            raise RuntimeError(f"verify found a problem in a generated log: {result.problem}")
        return int(result.checked)
    finally:
        engine.dispose()


def verify_2(url: str) -> int:
    """The same walk with ranges checked by 2 worker processes (``workers=2``)."""
    return verify(url, workers=2)


WORKLOADS = {"rebuild": rebuild, "verify": verify, "verify-2": verify_2}


def _peak_rss_kb() -> int:
    """This process's own peak RSS: ``VmHWM`` of its address space.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that figure over
    from the parent through fork and exec, so a child started by a harness that
    had grown to 700 MB reported 700 MB whatever it did itself.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    name, url = argv
    out: dict[str, Any]
    started = time.perf_counter()
    events = WORKLOADS[name](url)
    seconds = time.perf_counter() - started
    peak_kb = _peak_rss_kb()
    out = {"events": events, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if workers_kb:
        out["workers_peak_rss_mb"] = workers_kb / 1024
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
