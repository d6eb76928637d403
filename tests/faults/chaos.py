"""A seeded stacked-fault run: ``python -m tests.faults.chaos --seed N --minutes M --backend B``.

TigerBeetle's VOPR idea at the level of processes. The harness starts its own
``redis-server`` on a free loopback port and its own database (a SQLite file, or
a PostgreSQL database created for the run and dropped after it), then runs:

* a **producer** enqueueing settlements, some with a key it used before (the
  same request: must map to the same job) and some with a known key and another
  amount (must be refused as a conflict); it retries a failed call with the
  same key, as a client should;
* K **workers** (``ledger worker`` processes) whose handler is a payment
  provider that records every call in its own file and fails transiently and
  permanently at set rates (``tests.faults.chaos_provider``); the harness
  respawns a worker it killed, as a supervisor would, and restarts nothing else;
* an **operator** requeueing dead-lettered jobs; after the last fault only
  those the provider paid (paid, then the lease ran out on the last attempt);
* a projection follower (``ledger project --follow``);
* a **fault loop** driven by the seed: kill -9, SIGSTOP past the lease,
  FLUSHALL, Redis restarted empty, Redis at maxmemory for a while, and on
  PostgreSQL ``pg_terminate_backend`` and the database refusing connections.
  Faults overlap (stacked). Nobody runs ``ledger recover``.

Then it drains and checks, from the log and the provider's record: no job lost,
none completed twice, no completion of a stale attempt, every history a legal
path, every job the provider paid completed and every completed job paid,
projections rebuilt from zero equal to the live ones and money conserved
(``ledger reconcile`` with the provider's statement), ``ledger verify`` OK, and
liveness: every job terminal within a stated bound after the last fault. It
prints the figures, the faults by kind and the seed; the same seed draws the
same fault schedule, producer and provider failures again (process timing,
not the seed, decides the rest). Exit 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from tests.faults.chaos_run import Plan, run

ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="the run's seed [random]")
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes of faults [1]")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=3, help="worker processes [3]")
    parser.add_argument("--rate", type=float, default=15.0, help="new jobs per second [15]")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    return Plan(
        seed=seed,
        seconds=args.minutes * 60,
        backend=args.backend,
        workers=args.workers,
        rate=args.rate,
        keep=args.keep,
        as_json=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse(argv)).ok else 1


if __name__ == "__main__":
    sys.exit(main())
