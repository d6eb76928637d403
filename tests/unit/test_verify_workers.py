"""``ledger verify`` picks its processes from the CPUs this process may use."""

from __future__ import annotations

import pytest

from ledger.audit import parallel


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 2), (4, 4), (64, 4)])
def test_one_worker_per_cpu_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int
) -> None:
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert parallel.default_workers() == workers


def test_without_affinity_it_counts_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(parallel.os, "sched_getaffinity")
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: None)
    assert parallel.default_workers() == 1
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 3)
    assert parallel.default_workers() == 3
