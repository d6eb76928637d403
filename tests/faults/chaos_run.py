"""The chaos run itself: set up, run the actors, drain, check, report (see ``chaos``)."""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ledger.events import EventType
from ledger.lifecycle import fold
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.faults.chaos_actors import (
    FaultLoop,
    Operator,
    Producer,
    Sampler,
    last_events,
    schedule,
)
from tests.faults.chaos_parts import (
    LEDGER,
    ROOT,
    OwnDatabase,
    OwnRedis,
    Supervisor,
    start_follower,
    worker_environment,
)
from tests.faults.chaos_provider import CALL_SECONDS, marker

#: the run's settings: short leases and a short retry cap, so the bound fits in a minute
SETTINGS = {
    "LEDGER_QUEUE_NAME": "chaos",
    "LEDGER_LEASE_SECONDS": "2",
    "LEDGER_SWEEP_SECONDS": "0.5",
    "LEDGER_RELAY_GRACE_SECONDS": "0.5",
    "LEDGER_RETRY_BASE_SECONDS": "0.1",
    "LEDGER_RETRY_CAP_SECONDS": "1",
    "LEDGER_DEFAULT_MAX_ATTEMPTS": "4",
    "LEDGER_DB_IDLE_TIMEOUT_SECONDS": "2",
    "LEDGER_DB_LOCK_TIMEOUT_SECONDS": "5",
    "LEDGER_DB_STATEMENT_TIMEOUT_SECONDS": "10",
}
#: scheduling slack on a loaded two-core machine (seconds)
SLACK = 5.0
#: the least throughput (jobs/s) three workers of four threads keep while draining here
MIN_RATE = 5.0
WORKER_FAULTS = ["kill9", "sigstop"]
TERMINAL = ("completed", "dead_lettered")
REDIS_FAULTS = ["flushall", "redis_restart", "redis_oom"]
POSTGRES_FAULTS = ["pg_terminate", "db_refuse"]


@dataclass(frozen=True)
class Plan:
    seed: int
    seconds: float
    backend: str
    workers: int = 3
    rate: float = 15.0
    keep: bool = False
    as_json: bool = False

    def bound(self, backlog: int = 0) -> float:
        """Liveness bound after the last fault: lease + two sweeps + the retry cap of the
        run's settings (every attempt of a job's budget at the cap, each with a call),
        the relay's grace and the idle-transaction timeout, and some slack; plus
        the jobs still live at the last fault (``backlog``) at ``MIN_RATE``: a queue the
        faults let grow drains at the workers' pace, which is not a stuck job."""
        s = {k: float(v) for k, v in SETTINGS.items() if k != "LEDGER_QUEUE_NAME"}
        per_attempt = s["LEDGER_RETRY_CAP_SECONDS"] + CALL_SECONDS
        return (
            s["LEDGER_LEASE_SECONDS"]
            + 2 * s["LEDGER_SWEEP_SECONDS"]
            + s["LEDGER_RELAY_GRACE_SECONDS"]
            + s["LEDGER_DEFAULT_MAX_ATTEMPTS"] * per_attempt
            + s["LEDGER_DB_IDLE_TIMEOUT_SECONDS"]
            + SLACK
            + backlog / MIN_RATE
        )


@dataclass
class Outcome:
    ok: bool
    figures: dict[str, Any] = field(default_factory=dict)


def run(plan: Plan) -> Outcome:
    directory = Path(tempfile.mkdtemp(prefix=f"chaos-{plan.seed}-"))
    (directory / "provider" / "paid").mkdir(parents=True)
    # the harness's own ledger (producer, operator) logs to the run's directory
    handler = logging.FileHandler(directory / "harness.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("ledger").addHandler(handler)
    logging.getLogger("ledger").propagate = False
    redis = OwnRedis(directory)
    database = OwnDatabase(plan.backend, directory, plan.seed)
    try:
        return _run(plan, directory, redis, database)
    finally:
        redis.kill()
        database.drop()
        if not plan.keep:
            shutil.rmtree(directory, ignore_errors=True)


def _run(plan: Plan, directory: Path, redis: OwnRedis, database: OwnDatabase) -> Outcome:
    rng = random.Random(plan.seed)
    began = datetime.now(UTC)  # the reconciliation's period starts here
    provider = directory / "provider"
    env = worker_environment(
        {
            **SETTINGS,
            "LEDGER_DATABASE_URL": database.url,
            "LEDGER_REDIS_URL": redis.url,
            "CHAOS_PROVIDER_DIR": str(provider),
            "CHAOS_SEED": str(plan.seed),
        }
    )
    settings = Settings(
        **{k.removeprefix("LEDGER_").lower(): v for k, v in env.items() if k.startswith("LEDGER_")}
    )
    ledger = build_ledger(settings)
    supervisor = Supervisor(plan.workers, env, directory)
    follower = start_follower(env, directory)
    kinds = WORKER_FAULTS + REDIS_FAULTS + (POSTGRES_FAULTS if plan.backend == "postgres" else [])
    lease = float(SETTINGS["LEDGER_LEASE_SECONDS"])
    faults = FaultLoop(
        schedule(rng, plan.seconds, kinds, plan.workers, lease), supervisor, redis, database
    )
    producer = Producer(ledger, random.Random(rng.random()), plan.rate)
    keys = _JobKeys(ledger)
    operator = Operator(ledger, provider, keys.of)
    sampler = Sampler(ledger)
    threads = [threading.Thread(target=a.run, daemon=True) for a in (producer, operator, sampler)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    faults.run(started)
    producer.stop.set()
    threads[0].join()
    fault_ended = last_fault = max(faults.ends, default=started)
    # the bound counts from when every worker runs again: how long a respawned
    # process takes to import and start is the machine's, not the ledger's
    _wait_for(supervisor.all_started, 300)
    last_fault = max(last_fault, time.monotonic())
    backlog = _live(ledger)
    operator.only_paid = True
    drained_at = _drain(ledger, provider, keys, plan.bound() * 3 + 60)
    operator.stop.set()
    sampler.stop.set()
    supervisor.stop()
    follower.terminate()
    follower.wait(timeout=60)
    figures = _check(ledger, producer, provider, env, directory, began)
    figures.update(
        seed=plan.seed,
        backend=plan.backend,
        minutes=round(plan.seconds / 60, 2),
        workers=plan.workers,
        faults=dict(sorted(faults.done.items())),
        fault_errors=faults.errors,
        requeued_by_operator=operator.requeued,
        worker_exits_not_caused_by_the_harness=supervisor.unexpected,
        longest_writer_stall_seconds=round(producer.longest_call, 2),
        longest_until_accepted_seconds=round(producer.longest_until_accepted, 2),
        producer=dict(producer.counts),
        producer_violations=producer.violations,
        drain_after_last_fault_seconds=(
            None if drained_at is None else round(max(0.0, drained_at - last_fault), 2)
        ),
        live_at_the_last_fault=backlog,
        drain_after_the_faults_ended_seconds=(
            None if drained_at is None else round(max(0.0, drained_at - fault_ended), 2)
        ),
        liveness_bound_seconds=round(plan.bound(backlog), 2),
        longest_resume_after_a_fault_seconds=_longest_resume(sampler, faults),
    )
    ledger.close()
    outcome = Outcome(_verdict(figures), figures)
    _report(outcome, plan)
    return outcome


class _JobKeys:
    """job id -> idempotency key, from the log (cached; a job's key never changes)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.cache: dict[str, str] = {}

    def of(self, job_id: str) -> str | None:
        if job_id not in self.cache:
            events = self.ledger.store.read_stream(job_id)
            if not events:
                return None
            self.cache[job_id] = str(events[0].data["request"]["idempotency_key"])
        return self.cache[job_id]


def _drain(ledger: Ledger, provider: Path, keys: _JobKeys, limit: float) -> float | None:
    """Wait until every job is terminal (a paid dead job is not) and Redis holds none."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if _quiet(ledger, provider, keys):
                return time.monotonic()
        except Exception:  # a backend still coming back: look again
            pass
        time.sleep(0.5)
    return None


def _wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.2)


def _live(ledger: Ledger) -> int:
    """Jobs not terminal in the log now (the backlog the drain starts from)."""
    for _ in range(120):
        try:
            return sum(kind not in TERMINAL for kind in last_events(ledger).values())
        except Exception:  # the database is coming back from a fault
            time.sleep(0.5)
    return 0


def _quiet(ledger: Ledger, provider: Path, keys: _JobKeys) -> bool:
    last = last_events(ledger)
    for job_id, kind in last.items():
        if kind == "completed":
            continue
        if kind != "dead_lettered":
            return False
        key = keys.of(job_id)
        if key is not None and marker(provider, key).exists():
            return False  # the operator requeues it
    depths = ledger.queue.depths()
    return depths.ready + depths.delayed + depths.inflight == 0


def _check(
    ledger: Ledger,
    producer: Producer,
    provider: Path,
    env: dict[str, str],
    directory: Path,
    began: datetime,
) -> dict[str, Any]:
    streams: dict[str, list[Any]] = {}
    for event in ledger.store.read_all():
        streams.setdefault(event.job_id, []).append(event)
    figures: dict[str, Any] = Counter()
    illegal: list[str] = []
    completed_keys: set[str] = set()
    for job_id, events in streams.items():
        try:
            job = fold(events)
        except Exception as error:
            illegal.append(f"{job_id}: {error}")
            continue
        assert job is not None
        figures[f"jobs {job.status.value}"] += 1
        completions = [e for e in events if e.type is EventType.COMPLETED]
        figures["double"] += len(completions) > 1
        figures["stale accepted"] += _stale_completions(events)
        if completions:
            completed_keys.add(job.idempotency_key)
    paid = _paid_keys(provider, producer)
    in_log = {job_id for job_id in streams}
    lost = [key for key, job_id in producer.accepted.items() if job_id not in in_log]
    result = dict(figures)
    result.update(
        jobs=len(streams),
        lost=len(lost),
        illegal_histories=illegal[:5],
        illegal=len(illegal),
        paid_but_not_completed=len(set(paid) - completed_keys),
        completed_but_not_paid=len(completed_keys - set(paid)),
        provider_calls=_calls(provider),
    )
    result["double"] = figures["double"]
    result["stale accepted"] = figures["stale accepted"]
    result.update(_audits(env, directory, paid, began))
    return result


def _stale_completions(events: list[Any]) -> int:
    """``completed`` events that do not answer the attempt in flight right before them."""
    stale = 0
    current: int | None = None
    for event in events:
        if event.type is EventType.ATTEMPTED:
            current = int(event.data["attempt"])
        elif event.type is EventType.COMPLETED:
            stale += int(event.data.get("attempt", -1)) != current
            current = None
        elif event.type is EventType.FAILED:
            current = None
    return stale


def _paid_keys(provider: Path, producer: Producer) -> dict[str, tuple[int, str]]:
    """key -> (amount, currency) of every key the provider paid (its marker files)."""
    paid: dict[str, tuple[int, str]] = {}
    for key, request in producer.requests.items():
        if marker(provider, key).exists():
            paid[key] = (request.amount, request.currency)
    return paid


def _calls(provider: Path) -> dict[str, int]:
    calls: Counter[str] = Counter()
    for path in provider.glob("calls-*.jsonl"):
        for line in path.read_bytes().splitlines():
            calls[orjson.loads(line)["result"]] += 1
    return dict(calls)


def _audits(
    env: dict[str, str], directory: Path, paid: dict[str, tuple[int, str]], began: datetime
) -> dict[str, Any]:
    """``ledger verify`` and ``ledger reconcile`` with the provider's statement (the period:
    the whole run; each payout settled when the provider marked it paid)."""
    statement = directory / "statement.csv"
    provider = directory / "provider"
    lines = ["idempotency_key,amount,currency,settled_at"]
    for key, (amount, currency) in sorted(paid.items()):
        settled = datetime.fromtimestamp(marker(provider, key).stat().st_mtime, UTC)
        lines.append(f"{key},{amount},{currency},{_instant(settled)}")
    statement.write_text("\n".join(lines) + "\n")
    period = ["--from", _instant(began), "--to", _instant(datetime.now(UTC))]
    verify = _ledger(env, "verify")
    reconcile = _ledger(env, "reconcile", "--json", "--statement", str(statement), *period)
    failed_checks: list[str] = []
    if reconcile.returncode != 0:
        try:
            report = orjson.loads(reconcile.stdout)
            failed_checks = [
                f"{c['name']}: {c['summary']}" for c in report["checks"] if not c["ok"]
            ]
        except orjson.JSONDecodeError:
            failed_checks = [reconcile.stderr.strip()[-500:]]
    return {
        "verify_ok": verify.returncode == 0,
        "verify": (verify.stdout + verify.stderr).strip()[-300:],
        "reconcile_ok": reconcile.returncode == 0,
        "reconcile_failures": failed_checks,
    }


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEDGER, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _longest_resume(sampler: Sampler, faults: FaultLoop) -> float | None:
    """The longest wait for the next completion after a fault that left no other under way
    (until the next fault began: a wait cut short by one is not this fault's)."""
    starts = sorted(start for start, _ in faults.spans)
    resumes = []
    for end in faults.alone():
        until = next((s for s in starts if s > end), float("inf"))
        if (resumed := sampler.resumed_after(end, until)) is not None:
            resumes.append(resumed)
    return round(max(resumes), 2) if resumes else None


def _verdict(f: dict[str, Any]) -> bool:
    drained = f["drain_after_last_fault_seconds"]
    return (
        f["lost"] == 0
        and f["double"] == 0
        and f["stale accepted"] == 0
        and f["illegal"] == 0
        and f["paid_but_not_completed"] == 0
        and f["completed_but_not_paid"] == 0
        and not f["producer_violations"]
        and not f["worker_exits_not_caused_by_the_harness"]
        and f["verify_ok"]
        and f["reconcile_ok"]
        and drained is not None
        and drained <= f["liveness_bound_seconds"]
    )


def _report(outcome: Outcome, plan: Plan) -> None:
    f = outcome.figures
    jobs = {k.removeprefix("jobs "): v for k, v in f.items() if k.startswith("jobs ")}
    out = [
        f"chaos run: seed {plan.seed}, {plan.backend}, {f['minutes']} min of faults, "
        f"{plan.workers} workers x 4 threads",
        f"jobs: {f['jobs']} in the log {jobs}; producer {f['producer']}",
        f"faults: {f['faults']}"
        + (f"; could not inject: {f['fault_errors']}" if f["fault_errors"] else ""),
        f"lost {f['lost']}, double {f['double']}, stale accepted {f['stale accepted']}, "
        f"illegal histories {f['illegal']}, paid but not completed {f['paid_but_not_completed']}, "
        f"completed but not paid {f['completed_but_not_paid']}",
        f"provider calls {f['provider_calls']}; operator requeues {f['requeued_by_operator']}",
        f"drained {f['drain_after_the_faults_ended_seconds']} s after the last fault ended, "
        f"{f['drain_after_last_fault_seconds']} s after every worker was up again, "
        f"{f['live_at_the_last_fault']} jobs live then (bound {f['liveness_bound_seconds']} s: "
        f"{plan.bound():.1f} s + {MIN_RATE:.0f} jobs/s); longest wait for the next completion "
        f"after a fault {f['longest_resume_after_a_fault_seconds']} s",
        f"longest writer stall (one enqueue call) {f['longest_writer_stall_seconds']} s; "
        f"longest until a job was accepted {f['longest_until_accepted_seconds']} s",
        f"verify {'ok' if f['verify_ok'] else 'FAILED: ' + f['verify']}, reconcile "
        + ("ok" if f["reconcile_ok"] else f"FAILED: {f['reconcile_failures']}"),
    ]
    if f["worker_exits_not_caused_by_the_harness"] or f["producer_violations"] or f["illegal"]:
        out.append(f"worker exits: {f['worker_exits_not_caused_by_the_harness'][:3]}")
        out.append(f"producer: {f['producer_violations'][:5]}; illegal: {f['illegal_histories']}")
    out.append(
        f"RESULT: {'ok' if outcome.ok else 'FAILED'} "
        f"(seed {plan.seed}; rerun with --seed {plan.seed})"
    )
    print("\n".join(out), flush=True)
    if plan.as_json:
        print(orjson.dumps(f, default=str).decode(), flush=True)
