"""Markdown tables from a run's outcomes: systems as rows, workloads as columns."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.common import Outcome

QUEUE_COLUMNS = [
    ("enqueue-single", "jobs_per_s", "enqueue single (jobs/s)"),
    ("enqueue-batched", "jobs_per_s", "enqueue batched (jobs/s)"),
    ("drain-1", "jobs_per_s", "drain 1 proc (jobs/s)"),
    ("drain-2", "jobs_per_s", "drain 2 procs (jobs/s)"),
    ("drain-2", "wall_s", "drain 2 wall incl. start (s)"),
    ("drain-2", "wall_jobs_per_s", "drain 2 incl. start-up (jobs/s)"),
    ("drain-2", "peak_rss_mb", "drain 2 peak RSS (MB)"),
    ("retry-2", "jobs_per_s", "retry-heavy 2 procs (jobs/s)"),
]
RATIO_COLUMNS = [col for col in QUEUE_COLUMNS if col[1] in ("jobs_per_s", "wall_jobs_per_s")]
LOG_COLUMNS = [
    ("append-single", "events_per_s", "append 1/txn (ev/s)"),
    ("append-batched", "events_per_s", "append 100/txn (ev/s)"),
    ("store-enqueue", "jobs_per_s", "store.enqueue (jobs/s)"),
    ("floor-insert-1", "events_per_s", "raw INSERT 1/txn (ev/s)"),
    ("floor-insert-100", "events_per_s", "raw INSERT 100/txn (ev/s)"),
    ("floor-copy-100", "events_per_s", "raw COPY 100/txn (ev/s)"),
    ("floor-insert-1000", "events_per_s", "raw INSERT 1000/txn (ev/s)"),
    ("read-all", "events_per_s", "read_all (ev/s)"),
    ("floor-scan", "events_per_s", "raw SELECT scan (ev/s)"),
]
BIG_COLUMNS = [
    ("generate-mid", "events_per_s", "generate mid log (ev/s)"),
    ("generate-big", "events_per_s", "generate big log (ev/s)"),
    ("read-all-big", "events_per_s", "read_all big (ev/s)"),
    ("floor-scan-big", "events_per_s", "raw scan big (ev/s)"),
    ("rebuild-mid", "events_per_s", "rebuild mid (ev/s)"),
    ("rebuild-mid", "peak_rss_mb", "rebuild mid RSS (MB)"),
    ("rebuild-mid", "workers_peak_rss_mb", "rebuild mid fold process RSS (MB)"),
    ("rebuild-big", "events_per_s", "rebuild big (ev/s)"),
    ("rebuild-big", "peak_rss_mb", "rebuild big RSS (MB)"),
    ("rebuild-big", "workers_peak_rss_mb", "rebuild big fold process RSS (MB)"),
    ("verify-big", "events_per_s", "verify big (ev/s)"),
    ("verify-big-2", "events_per_s", "verify big, 2 procs (ev/s)"),
]
EMPTY = "-"
AUDIT_WORKLOADS = ["audit-job-history", "audit-dlq-page", "audit-user-day", "audit-totals-day"]


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Table:
    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        self.by_key = {(o.system, o.workload): o for o in outcomes}
        self.systems: list[str] = []
        for outcome in outcomes:
            if outcome.system not in self.systems:
                self.systems.append(outcome.system)
        self.notes: dict[str, int] = {}

    def value(self, system: str, workload: str, figure: str) -> float | None:
        outcome = self.by_key.get((system, workload))
        if outcome is None:
            return None
        return outcome.figures.get(figure)

    def ratio(self, mine: str, theirs: str, workload: str, figure: str) -> float | None:
        """``mine / theirs``: the median of the per-round ratios when both ran every round.

        The queue workloads run in rounds, each system once per round back to
        back (see ``bench.sections.queue_section``), so run ``i`` of one system
        and run ``i`` of another were measured side by side. Otherwise (a system
        stopped early, an older result file) the ratio of the medians.
        """
        a, b = self.by_key.get((mine, workload)), self.by_key.get((theirs, workload))
        if a is None or b is None:
            return None
        pairs = [
            (x[figure], y[figure])
            for x, y in zip(a.runs, b.runs, strict=False)
            if x.get(figure) and y.get(figure)
        ]
        if pairs and len(pairs) == len(a.runs) == len(b.runs):
            return statistics.median(x / y for x, y in pairs)
        x, y = a.figures.get(figure), b.figures.get(figure)
        return x / y if x and y else None

    def cell(self, system: str, workload: str, figure: str) -> str:
        outcome = self.by_key.get((system, workload))
        if outcome is None:
            return EMPTY
        if figure in outcome.figures:
            return _fmt(outcome.figures[figure])
        reason = outcome.unavailable or outcome.error or "no figure"
        number = self.notes.setdefault(reason, len(self.notes) + 1)
        return f"n/a[^{number}]"

    def render(
        self, systems: Sequence[str], columns: Sequence[tuple[str, str, str]], head: str
    ) -> list[str]:
        lines = [
            "| " + " | ".join([head, *(label for *_, label in columns)]) + " |",
            "|" + "---|" * (len(columns) + 1),
        ]
        for system in systems:
            cells = [self.cell(system, w, f) for w, f, _ in columns]
            if any(c != EMPTY for c in cells):
                lines.append("| " + " | ".join([system, *cells]) + " |")
        return lines

    def footnotes(self) -> list[str]:
        return [f"[^{n}]: {reason}" for reason, n in self.notes.items()]


def ratio_lines(table: Table, ledgers: Sequence[str], peers: Sequence[str]) -> list[str]:
    lines = []
    for ledger in ledgers:
        if not any(table.value(ledger, w, f) for w, f, _ in RATIO_COLUMNS):
            lines.append(f"- {ledger}: no queue figures yet (see footnotes), so no ratios.")
            continue
        lines += [
            "",
            f"Ratio {ledger} / peer (> 1 means the ledger is faster; the median of the "
            "per-round ratios, each round running every system back to back):",
            "",
        ]
        header = "| peer | " + " | ".join(label for *_, label in RATIO_COLUMNS) + " |"
        lines += [header, "|" + "---|" * (len(RATIO_COLUMNS) + 1)]
        for peer in peers:
            cells = []
            for workload, figure, _ in RATIO_COLUMNS:
                ratio = table.ratio(ledger, peer, workload, figure)
                cells.append(f"{ratio:.2f}x" if ratio else EMPTY)
            lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    return lines


def fractions(table: Table, systems: Sequence[str]) -> list[str]:
    lines = [
        "| backend | append 1/txn ÷ raw INSERT 1/txn | append 100/txn ÷ raw INSERT 100/txn | "
        "read_all ÷ raw scan | read_all big ÷ raw scan big |",
        "|---|---|---|---|---|",
    ]
    pairs = [
        ("append-single", "floor-insert-1"),
        ("append-batched", "floor-insert-100"),
        ("read-all", "floor-scan"),
        ("read-all-big", "floor-scan-big"),
    ]
    for system in systems:
        cells = []
        for mine, floor in pairs:
            a = table.value(system, mine, "events_per_s")
            b = table.value(system, floor, "events_per_s")
            cells.append(f"{a / b:.0%}" if a and b else EMPTY)
        if any(c != EMPTY for c in cells):
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


def markdown(outcomes: Sequence[Outcome], meta: dict[str, Any]) -> str:
    table = Table(outcomes)
    ledgers = [s for s in table.systems if s.startswith("ledger-")]
    peers = [s for s in table.systems if not s.startswith("ledger-")]
    audit_columns = [
        (w, f, f"{w.removeprefix('audit-')} {f.removesuffix('_ms')} (ms)")
        for w in AUDIT_WORKLOADS
        for f in ("p50_ms", "p99_ms")
    ]
    sizes = meta["sizes"]
    out = [
        f"## Run {meta['started']} ({'quick' if meta['quick'] else 'full'})",
        "",
        f"Machine: {meta['machine']['nproc']} cores, {meta['machine']['memory']}; "
        f"Python {meta['machine']['python']}, Redis {meta['machine']['redis']}, "
        f"PostgreSQL {meta['machine']['postgres']}, SQLite {meta['machine']['sqlite']}; "
        f"load average at start {meta['machine']['loadavg_at_start']}, "
        f"at end {meta['machine'].get('loadavg_at_end')}; CPU reference (a fixed "
        f"Python loop, lower is faster) {meta['machine'].get('cpu_reference_ms', '?')} ms. "
        f"Median of {sizes['repeats']} run(s) ({sizes['queue_repeats']} for queues). "
        f"Jobs N = {sizes['jobs']:,} "
        f"(retry-heavy {sizes['retry_jobs']:,}); log sizes mid {sizes['mid_log']:,}, "
        f"big {sizes['big_log']:,} events.",
        "",
        "### Queues (no-op job)",
        "",
        *table.render([*peers, *ledgers], QUEUE_COLUMNS, "system"),
        "",
        *ratio_lines(table, ledgers, peers),
        "",
        "### Event log: append, read, physical floor",
        "",
        *table.render(ledgers, LOG_COLUMNS, "backend"),
        "",
        *fractions(table, ledgers),
        "",
        "### Big log: generate, replay read, rebuild, verify",
        "",
        *table.render(ledgers, BIG_COLUMNS, "backend"),
        "",
        "### Audit queries on the big log",
        "",
        *table.render(ledgers, audit_columns, "backend"),
        "",
        *table.footnotes(),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """``python -m bench.report RESULT.json[.tmp]``: the tables of a (partial) result file."""
    import sys
    from pathlib import Path

    import orjson

    document = orjson.loads(Path(argv[0]).read_bytes())
    if isinstance(document, list):  # a partial file: outcomes only
        document = {"outcomes": document, **PARTIAL_META}
    outcomes = [
        Outcome(o["system"], o["workload"], o["figures"], o["runs"], o["unavailable"], o["error"])
        for o in document["outcomes"]
    ]
    sys.stdout.write(markdown(outcomes, document))
    return 0


PARTIAL_META: dict[str, Any] = {
    "started": "(partial)",
    "quick": False,
    "sizes": {"repeats": "?", "queue_repeats": "?", "jobs": 0, "retry_jobs": 0, "mid_log": 0,
              "big_log": 0},
    "machine": {"nproc": "?", "memory": "?", "python": "?", "redis": "?", "postgres": "?",
                "sqlite": "?", "loadavg_at_start": "?"},
}  # fmt: skip


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
