"""Job ids: UUIDs that begin with their creation time (version 7, RFC 9562).

A version 7 UUID is 48 bits of Unix time in milliseconds, then random bits.
``uuid_utils.uuid7`` (Rust's ``uuid`` crate, 0.2 µs an id against 3.2 µs for
the pure-Python ``uuid6`` it replaced) keeps one process's ids increasing: ids
made in the same millisecond carry a counter after the time (RFC 9562, method
1), so a burst stays on the clock. Ids made later sort later, so every index
keyed by a job id (the log's ``UNIQUE(job_id, version)``,
``job_state``'s and the DLQ's keys) takes new ids at its right-hand edge, in
pages that are already in memory, instead of at a random page of the whole
index as a random (version 4) UUID does. Loading
the 303,153 ``job_state`` rows of a 1M-event rebuild into PostgreSQL took 1.7 s
with such ids and 2.7 s with random ones (the same rows, by ``COPY``).

The time in an id is about when it was made, on the machine that made it: it
orders the ids roughly, it is never the job's time of record (that is the time
of its ``enqueued`` event). The demo keeps seeded random (version 4) ids, so
that one seed gives one run.
"""

from __future__ import annotations

from datetime import datetime

import uuid_utils

from ledger.events import epoch_ms

#: bits after the time: version and variant bits are set over them (RFC 9562)
RANDOM_BITS = 80


def new_job_id() -> str:
    """A fresh job id: a version 7 UUID, after the ids this process made before."""
    return str(uuid_utils.uuid7())


def job_id_at(moment: datetime, random_bits: int) -> str:
    """The version 7 UUID of ``moment`` with ``random_bits`` (from a seeded source, say).

    For reproducible logs (the benchmarks' generator): the same moment and bits
    give the same id.
    """
    if not 0 <= random_bits < 1 << RANDOM_BITS:
        raise ValueError(f"random_bits must be an unsigned {RANDOM_BITS}-bit number")
    return str(uuid_utils.UUID(int=(epoch_ms(moment) << RANDOM_BITS) | random_bits, version=7))
