"""One result per workload under ``bench/results/``: the latest run of it.

A run merges its outcomes into ``bench/results/<workload>.json``
(``<workload>.quick.json`` for ``--quick``): per system, the outcome this run
measured replaces the one kept before, and the systems it did not run keep
theirs, each tagged with the run it came from (``runs`` holds those runs'
machine, versions and sizes). ``latest.md`` (``latest-quick.md``) is rebuilt
from every workload file. Older runs are in the git history of this folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.common import ROOT, Outcome
from bench.report import markdown

RESULTS = ROOT / "bench" / "results"


def save(meta: dict[str, Any], outcomes: Sequence[Outcome], *, quick: bool) -> list[Path]:
    """Merge ``outcomes`` into their workloads' files; the files written (``latest.md`` last)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        by_workload.setdefault(outcome.workload, []).append(outcome.as_dict())
    written = [
        _merge(RESULTS / f"{workload}{'.quick' if quick else ''}.json", workload, found, meta)
        for workload, found in by_workload.items()
    ]
    written.append(write_summary(quick=quick))
    return written


def _merge(path: Path, workload: str, found: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    old: dict[str, Any] = (
        orjson.loads(path.read_bytes())
        if path.exists()
        else {"workload": workload, "runs": {}, "outcomes": []}
    )
    run = str(meta["started"])
    measured = {outcome["system"] for outcome in found}
    kept = [o for o in old["outcomes"] if o["system"] not in measured]
    fresh = [{**outcome, "run": run} for outcome in found]
    outcomes = sorted([*kept, *fresh], key=lambda o: str(o["system"]))
    used = {str(o["run"]) for o in outcomes}
    runs = {key: value for key, value in old["runs"].items() if key in used}
    runs[run] = meta
    document = {"workload": workload, "runs": runs, "outcomes": outcomes}
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def write_summary(*, quick: bool) -> Path:
    """``latest.md``: the tables of every workload's kept outcomes, newest run's machine."""
    pattern = "*.quick.json" if quick else "*.json"
    outcomes: list[Outcome] = []
    runs: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for path in sorted(RESULTS.glob(pattern)):
        if not quick and path.name.endswith(".quick.json"):
            continue
        document = orjson.loads(path.read_bytes())
        if not isinstance(document, dict) or not {"workload", "runs", "outcomes"} <= set(document):
            continue  # another tool's result file (http_enqueue, process_costs, ...)
        runs.update(document["runs"])
        for raw in document["outcomes"]:
            fields = {key: value for key, value in raw.items() if key != "run"}
            outcomes.append(Outcome(**fields))
        lines.append(f"- `{document['workload']}`: runs {', '.join(sorted(document['runs']))}")
    target = RESULTS / ("latest-quick.md" if quick else "latest.md")
    if not runs:
        return target
    newest = runs[max(runs)]
    preface = (
        "# Latest result of each workload\n\n"
        "Each system's figures of a workload come from the last run that measured it "
        "(listed at the end); the machine line is the newest run's. A ratio compares "
        "one run only when both systems' figures come from it.\n\n"
    )
    text = preface + markdown(outcomes, newest)
    text += "\n\n### Where each workload's figures come from\n\n" + "\n".join(lines) + "\n"
    target.write_text(text)
    return target
