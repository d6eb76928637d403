"""``ledger demo --provider toss-stub``: the whole story against the Toss stub, checks OK."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_demo import run_demo


def test_the_toss_stub_demo_pays_each_round_once_and_every_check_passes(tmp_path: Path) -> None:
    out = run_demo(tmp_path, "toss.db", "--provider", "toss-stub", "--jobs", "16")
    assert "[red]" not in out and not any(line.startswith("FAILED") for line in out.splitlines())
    assert "double payments (rounds Toss paid more than once): 0" in out
    for line in (
        "OK  no payout paid twice",
        "OK  verify",
        "OK  reconcile: projections",
        "OK  reconcile: conservation",
        "OK  reconcile: statement",
    ):
        assert line in out
    for story in ("cancelled through Toss", "a bounce", "half refunded", "no KYC"):
        assert story in out
    assert "payouts: {" in out and "'CANCELED': 1" in out and "'FAILED': 1" in out
