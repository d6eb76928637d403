"""The benchmark's queue rounds: systems interleaved, ratios paired by round."""

from __future__ import annotations

from pathlib import Path

from bench.common import Measure, NotAvailable, Outcome, Sizes
from bench.report import Table
from bench.sections import Run, _interleaved


def _run(tmp_path: Path, rounds: int) -> tuple[Run, list[str]]:
    lines: list[str] = []
    sizes = Sizes(queue_repeats=rounds)
    return Run(sizes, tmp_path, ["sqlite"], None, lines.append), lines


def test_rounds_run_every_system_once_before_the_next_round(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, rounds=3)
    calls: list[str] = []

    def once(name: str) -> Measure:
        calls.append(name)
        return {"jobs_per_s": float(len(calls))}

    _interleaved(run, "drain-2", {n: (lambda n=n: once(n)) for n in ("a", "b", "c")})

    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    by_system = {o.system: o for o in run.outcomes}
    assert [r["jobs_per_s"] for r in by_system["a"].runs] == [1.0, 6.0, 8.0]
    assert by_system["a"].figures == {"jobs_per_s": 6.0}


def test_a_system_that_fails_sits_out_the_later_rounds(tmp_path: Path) -> None:
    run, lines = _run(tmp_path, rounds=3)
    calls: list[str] = []

    def broken() -> Measure:
        calls.append("broken")
        raise RuntimeError("worker died")

    def missing() -> Measure:
        calls.append("missing")
        raise NotAvailable("not installed")

    def fine() -> Measure:
        calls.append("fine")
        return {"jobs_per_s": 10.0}

    _interleaved(run, "drain-1", {"broken": broken, "missing": missing, "fine": fine})

    assert calls.count("broken") == calls.count("missing") == 1
    assert calls.count("fine") == 3
    by_system = {o.system: o for o in run.outcomes}
    assert by_system["broken"].error == "RuntimeError: worker died"
    assert by_system["missing"].unavailable == "not installed"
    assert by_system["fine"].figures == {"jobs_per_s": 10.0}
    assert any("ERROR RuntimeError" in line for line in lines)


def _outcome(system: str, rates: list[float]) -> Outcome:
    outcome = Outcome(system, "enqueue-batched", runs=[{"jobs_per_s": r} for r in rates])
    outcome.settle()
    return outcome


def test_ratios_pair_the_runs_of_each_round() -> None:
    # paired, the ledger is 1.5x in two rounds of three (the machine doubled its speed
    # in round 2); the ratio of the medians (150 / 200) would say 0.75x
    table = Table([_outcome("ledger", [150, 300, 150]), _outcome("peer", [100, 200, 400])])

    ratio = table.ratio("ledger", "peer", "enqueue-batched", "jobs_per_s")

    assert ratio == 1.5


def test_ratios_fall_back_to_the_medians_when_the_rounds_differ() -> None:
    table = Table([_outcome("ledger", [150, 300]), _outcome("peer", [100, 200, 400])])

    ratio = table.ratio("ledger", "peer", "enqueue-batched", "jobs_per_s")

    assert ratio == 225 / 200
    assert table.ratio("ledger", "absent", "enqueue-batched", "jobs_per_s") is None
