"""Shared pieces of the harness: results, repeats, child processes, peak RSS.

Every workload returns a ``Measure`` (a dict of named figures); ``repeat`` runs
it several times and keeps the median of each figure. A workload that cannot
run (a peer not installed, a ledger module not merged yet) raises
``NotAvailable`` and is reported as such, never as zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Measure = dict[str, float]
Log = Callable[[str], None]


class NotAvailable(Exception):
    """The workload cannot run here; the message says why (shown in the table)."""


@dataclass
class Sizes:
    """How big each workload is (``--quick`` shrinks them)."""

    repeats: int = 3
    #: repeats of the queue workloads (a full pass over every peer takes ~30 min here)
    queue_repeats: int = 3
    append_single: int = 5_000
    append_batched: int = 50_000
    jobs: int = 20_000
    retry_jobs: int = 5_000
    big_log: int = 1_000_000
    mid_log: int = 100_000
    queries: int = 200
    drain_timeout: float = 900.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            repeats=1,
            queue_repeats=1,
            append_single=300,
            append_batched=5_000,
            jobs=1_000,
            retry_jobs=400,
            big_log=50_000,
            mid_log=10_000,
            queries=50,
            drain_timeout=60.0,
        )


@dataclass
class Outcome:
    """One workload on one system: the median figures, or why it did not run."""

    system: str
    workload: str
    figures: Measure = field(default_factory=dict)
    runs: list[Measure] = field(default_factory=list)
    unavailable: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "workload": self.workload,
            "figures": self.figures,
            "runs": self.runs,
            "unavailable": self.unavailable,
            "error": self.error,
        }

    def settle(self) -> None:
        """The medians of the runs so far."""
        if self.runs:
            self.figures = median_figures(self.runs)


def median_figures(runs: Sequence[Measure]) -> Measure:
    keys = {key for run in runs for key in run}
    return {key: statistics.median(run[key] for run in runs if key in run) for key in sorted(keys)}


def repeat(
    system: str,
    workload: str,
    fn: Callable[[], Measure],
    repeats: int,
    *,
    log: Callable[[str], None],
) -> Outcome:
    """Run ``fn`` ``repeats`` times; keep every run and the median of each figure."""
    outcome = Outcome(system, workload)
    for index in range(repeats):
        if not run_once(outcome, fn, f"[{index + 1}/{repeats}]", log=log):
            break
    outcome.settle()
    return outcome


def run_once(outcome: Outcome, fn: Callable[[], Measure], tag: str, *, log: Log) -> bool:
    """Run ``fn`` once into ``outcome``; False when it cannot run again (unavailable, failed)."""
    name = f"{outcome.system} / {outcome.workload}"
    try:
        run = fn()
    except NotAvailable as exc:
        outcome.unavailable = str(exc)
        log(f"  {name}: not available: {exc}")
        return False
    except Exception as exc:  # a failing peer must not stop the other workloads
        outcome.error = f"{type(exc).__name__}: {exc}"
        log(f"  {name}: ERROR {outcome.error}")
        return False
    outcome.runs.append(run)
    shown = ", ".join(f"{k}={v:,.1f}" for k, v in run.items())
    log(f"  {name} {tag}: {shown}")
    return True


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- child processes -----------------------------------------------------------


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def venv_bin(name: str) -> str:
    """A console script of the interpreter's venv (the peers' worker commands)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Children:
    """Worker processes started by one workload; each in its own process group.

    ``stop`` sends SIGTERM to each group it started (by id), waits, then SIGKILL.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], env: dict[str, str], name: str) -> None:
        out = (self.log_dir / f"{name}-{len(self.procs)}.log").open("ab")
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.procs.append(proc)

    def check_alive(self) -> None:
        for proc in self.procs:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"worker {proc.args!r} exited early with {code} (see logs)")

    def peak_rss_sample(self) -> float:
        """Sum of RSS (MB) over every process of every group we started."""
        try:
            import psutil
        except ImportError:
            return 0.0
        total = 0
        for proc in self.procs:
            try:
                parent = psutil.Process(proc.pid)
                for member in [parent, *parent.children(recursive=True)]:
                    total += member.memory_info().rss
            except psutil.Error:
                continue
        return total / 1e6

    def stop(self, grace: float = 10.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            # the group may hold forked children even when the leader has exited
            _signal_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=5)
        self.procs.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
