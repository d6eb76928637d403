"""docs/scripts.md's examples run, in order, in one namespace, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger.events import EventType
from ledger.store import EventStore
from tests.audit_support import build_log

DOC = Path(__file__).resolve().parents[2] / "docs" / "scripts.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_page_has_examples() -> None:
    assert len(blocks()) >= 5


def test_every_example_runs(
    db_url: str, store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_log(store, 8)
    lines = ["idempotency_key,amount,currency,settled_at"]
    requests = {}
    for event in store.read_all():
        if event.type is EventType.ENQUEUED:
            requests[event.job_id] = event.data["request"]
        elif event.type is EventType.COMPLETED:
            paid = requests[event.job_id]
            lines.append(
                f"{paid['idempotency_key']},{paid['amount']},{paid['currency']},"
                f"{event.occurred_at.isoformat()}"
            )
    (tmp_path / "statement.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    namespace: dict[str, object] = {"__name__": "docs_scripts"}
    for number, code in enumerate(blocks(), start=1):
        exec(compile(code, f"docs/scripts.md block {number}", "exec"), namespace)
    copied = namespace["accounts"].execute("SELECT count(*) FROM paid").fetchone()[0]  # type: ignore[attr-defined]
    assert copied == len(lines) - 1
    namespace["accounts"].close()  # type: ignore[attr-defined]
