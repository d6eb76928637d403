"""The run's sections: the log on each backend, the big log, and the queues (peers + ledger)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import ledger_log, ledger_plugins
from bench.common import Log, Measure, NotAvailable, Outcome, Sizes, repeat, run_once
from bench.generate import generate
from bench.peers import arq_peer, celery_peer, dramatiq_peer, procrastinate_peer, rq_peer
from bench.peers.base import PeerContext
from bench.services import ledger_database
from ledger.db import create_engine


@dataclass
class Run:
    sizes: Sizes
    work_dir: Path
    backends: list[str]
    only: set[str] | None
    log: Log
    outcomes: list[Outcome] = field(default_factory=list)
    #: called after every workload (the runner saves partial results with it)
    on_outcome: Callable[[], None] = lambda: None

    def wants(self, *names: str) -> bool:
        return self.only is None or bool(self.only & set(names))

    def measure(
        self, system: str, workload: str, fn: Callable[[], Measure], repeats: int | None = None
    ) -> Outcome:
        outcome = repeat(
            system, workload, fn, self.sizes.repeats if repeats is None else repeats, log=self.log
        )
        self.outcomes.append(outcome)
        self.on_outcome()
        return outcome


# -- 1. the log: append, enqueue (SQL only), read, physical floor ----------------


def log_section(run: Run, backend: str) -> None:
    system = f"ledger-{backend}"
    sizes, work = run.sizes, run.work_dir

    def fresh(fn: Callable[[str], Measure]) -> Callable[[], Measure]:
        def measure() -> Measure:
            with ledger_database(backend, work) as url:
                return fn(url)

        return measure

    if run.wants("append"):
        run.measure(
            system,
            "append-single",
            fresh(lambda u: ledger_log.append_single(u, sizes.append_single)),
        )
        run.measure(
            system,
            "append-batched",
            fresh(lambda u: ledger_log.append_batched(u, sizes.append_batched)),
        )
        run.measure(
            system,
            "store-enqueue",
            fresh(lambda u: ledger_log.store_enqueue(u, sizes.append_single)),
        )
    if run.wants("floor", "append"):
        floor_section(run, backend)


def floor_section(run: Run, backend: str) -> None:
    """The same rows through the ledger and through the driver alone."""
    system = f"ledger-{backend}"
    with ledger_database(backend, run.work_dir) as source:
        ledger_log.append_batched(source, run.sizes.append_batched)
        rows = ledger_log.dump_rows(source)
        run.measure(system, "read-all", lambda: ledger_log.read_all(source))
        run.measure(system, "floor-scan", lambda: ledger_log.floor_scan(source))
    for batch in (1, 100, 1000):
        # one row per transaction is fsync-bound: the single-append sample size is enough
        sample = rows[: run.sizes.append_single] if batch == 1 else rows

        def insert(batch: int = batch, sample: list[Any] = sample) -> Measure:
            with ledger_database(backend, run.work_dir) as target:
                return ledger_log.floor_insert(target, sample, batch)

        run.measure(system, f"floor-insert-{batch}", insert)
    if backend == "postgres":

        def copy() -> Measure:
            with ledger_database(backend, run.work_dir) as target:
                return ledger_log.floor_copy(target, rows, 100)

        run.measure(system, "floor-copy-100", copy)


# -- 2. a big generated log: generation, replay read, rebuild, verify, audit -------


def big_log_section(run: Run, backend: str) -> None:
    system = f"ledger-{backend}"
    sizes = run.sizes
    with ledger_database(backend, run.work_dir) as url:
        run.measure(system, "generate-mid", lambda: _generate(url, sizes.mid_log), repeats=1)
        if run.wants("rebuild"):
            run.measure(system, "rebuild-mid", lambda: ledger_plugins.rebuild(url))
    with ledger_database(backend, run.work_dir) as url:
        run.measure(system, "generate-big", lambda: _generate(url, sizes.big_log), repeats=1)
        if run.wants("generate", "read"):
            run.measure(system, "read-all-big", lambda: ledger_log.read_all(url))
            run.measure(system, "floor-scan-big", lambda: ledger_log.floor_scan(url))
        if run.wants("verify"):
            run.measure(system, "verify-big", lambda: ledger_plugins.verify(url))
            run.measure(system, "verify-big-2", lambda: ledger_plugins.verify_2(url))
        rebuilt = None
        if run.wants("rebuild", "audit"):
            rebuilt = run.measure(system, "rebuild-big", lambda: ledger_plugins.rebuild(url))
        if run.wants("audit"):
            audit_section(run, system, url, projections_ready=bool(rebuilt and rebuilt.figures))


def _generate(url: str, n: int) -> Measure:
    engine = create_engine(url)
    try:
        result = generate(engine, n)
    finally:
        engine.dispose()
    return {"events_per_s": result.events_per_s, "events": float(result.events)}


def audit_section(run: Run, system: str, url: str, *, projections_ready: bool) -> None:
    count = run.sizes.queries
    run.measure(system, "audit-job-history", lambda: ledger_plugins.audit_job_history(url, count))
    run.measure(system, "audit-user-day", lambda: ledger_plugins.audit_user_day(url, count))
    for workload, fn in (
        ("audit-dlq-page", ledger_plugins.audit_dlq_page),
        ("audit-totals-day", ledger_plugins.audit_totals_per_day),
    ):
        if projections_ready:
            run.measure(system, workload, lambda fn=fn: fn(url, count))
        else:
            run.outcomes.append(
                Outcome(system, workload, unavailable="needs the projections (rebuild) first")
            )


# -- 3. queues: enqueue, drain, retry-heavy for every peer and the ledger ----------


@dataclass(frozen=True)
class QueueSystem:
    name: str
    enqueue: Callable[[PeerContext, int, bool], Measure] | None
    drain: Callable[[PeerContext, int, int, bool], Measure]
    session: Callable[[PeerContext], contextlib.AbstractContextManager[Any]] | None = None


def _rq(system: str) -> Callable[[PeerContext, int, int, bool], Measure]:
    return lambda ctx, n, w, mix: rq_peer.run_drain(ctx, n, w, mix, system=system)


# order: the targets first (fastest Redis peer, the durable peer), slowest last
PEERS = [
    QueueSystem("dramatiq", dramatiq_peer.enqueue, dramatiq_peer.run_drain),
    QueueSystem(
        "procrastinate",
        procrastinate_peer.enqueue,
        procrastinate_peer.run_drain,
        procrastinate_peer.session,
    ),
    QueueSystem("rq-simple", rq_peer.enqueue, _rq("rq-simple")),
    QueueSystem("celery", celery_peer.enqueue, celery_peer.run_drain),
    QueueSystem("arq", arq_peer.enqueue, arq_peer.run_drain),
    QueueSystem("rq-fork", None, _rq("rq-fork")),  # same enqueue as rq-simple
]


def ledger_systems(backends: list[str], work: Path, *, tuned: bool = True) -> list[QueueSystem]:
    """The ledger as a queue system per backend; each workload gets a fresh database.

    ``ledger-<backend>`` runs its workers with the defaults a user gets
    (``--concurrency 8`` and nothing else); ``ledger-<backend>-tuned`` with
    ``--prefetch 256`` as well (drains only: enqueue is the same call).
    """
    systems = []
    for backend in backends:
        for prefetch in (None, 256) if tuned else (None,):
            name = f"ledger-{backend}" + ("-tuned" if prefetch else "")

            def enqueue(ctx: PeerContext, n: int, batched: bool, backend: str = backend) -> Measure:
                with ledger_database(backend, work) as url:
                    return ledger_plugins.ledger_enqueue(ctx, url, n, batched)

            def run_drain(
                ctx: PeerContext,
                n: int,
                w: int,
                mix: bool,
                backend: str = backend,
                name: str = name,
                prefetch: int | None = prefetch,
            ) -> Measure:
                with ledger_database(backend, work) as url:
                    return ledger_plugins.ledger_drain(
                        ctx, url, n, w, mix, name=name, prefetch=prefetch
                    )

            systems.append(QueueSystem(name, None if prefetch else enqueue, run_drain))
    return systems


def queue_section(run: Run, ctx: PeerContext, systems: list[QueueSystem]) -> None:
    """Every queue workload on every system, the repeats interleaved.

    A round runs the workload once on each system, back to back, in an order
    that rotates from round to round; the next round starts only when every
    system has had its turn. This machine's speed drifts by 2-3x over minutes,
    so a system measured in one block of minutes and its peer in another would
    compare the machine's moods, not the systems: interleaved, each round's
    figures are side by side, and the report's ratios are medians of the
    per-round ratios.
    """
    with contextlib.ExitStack() as sessions:
        ready = [system for system in systems if _open_session(run, ctx, system, sessions)]
        for label, fns in _queue_workloads(run, ctx, ready):
            _interleaved(run, label, fns)


def _open_session(
    run: Run, ctx: PeerContext, system: QueueSystem, sessions: contextlib.ExitStack
) -> bool:
    if system.session is None:
        return True
    try:
        sessions.enter_context(system.session(ctx))
    except NotAvailable as exc:
        run.log(f"  {system.name}: not available: {exc}")
        run.outcomes.append(Outcome(system.name, "enqueue-single", unavailable=str(exc)))
        return False
    return True


Workload = tuple[str, dict[str, Callable[[], Measure]]]


def _queue_workloads(run: Run, ctx: PeerContext, systems: list[QueueSystem]) -> list[Workload]:
    """Each queue workload with the function that runs it once, per system that has it."""
    sizes = run.sizes
    workloads: list[Workload] = []
    if run.wants("enqueue"):
        for batched in (False, True):
            workloads.append(
                (
                    "enqueue-batched" if batched else "enqueue-single",
                    {
                        s.name: partial(s.enqueue, ctx, sizes.jobs, batched)
                        for s in systems
                        if s.enqueue is not None
                    },
                )
            )
    if run.wants("drain"):
        for workers in (1, 2):
            workloads.append(
                (
                    f"drain-{workers}",
                    {s.name: partial(s.drain, ctx, sizes.jobs, workers, False) for s in systems},
                )
            )
    if run.wants("retry"):
        workloads.append(
            ("retry-2", {s.name: partial(s.drain, ctx, sizes.retry_jobs, 2, True) for s in systems})
        )
    return workloads


def _interleaved(run: Run, workload: str, fns: dict[str, Callable[[], Measure]]) -> None:
    outcomes = {name: Outcome(name, workload) for name in fns}
    names = list(fns)
    rounds = run.sizes.queue_repeats
    for index in range(rounds):
        shift = index % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            outcome = outcomes[name]
            if outcome.unavailable is None and outcome.error is None:
                run_once(outcome, fns[name], f"[round {index + 1}/{rounds}]", log=run.log)
    for outcome in outcomes.values():
        outcome.settle()
        run.outcomes.append(outcome)
    run.on_outcome()
