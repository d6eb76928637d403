"""``POST /api/settlements`` under load against the HTTP floor, in the same run (issue 26).

For each backend: a private Redis, a fresh migrated database, then two servers
under the same uvicorn settings (``--workers W``): ``ledger serve`` and the
validation-only floor (``bench/http_floor.py``: the same request model behind
the same bearer check, nothing behind it). The same client (asyncio, HTTP/1.1
keep-alive, one connection per client, a new idempotency key per request)
drives both, alternating in rounds: C concurrent clients, then one client in
sequence. Reported: requests/s, p50 and p99 latency, the ledger's share of the
floor (ledger / floor throughput, ledger p99 / floor p99), and the resident
memory of each server process after the run (item 3: ``serve`` per worker).

    .venv/bin/python -m bench.http_enqueue                         # both backends
    .venv/bin/python -m bench.http_enqueue --backend postgres --requests 3000
    .venv/bin/python -m bench.http_enqueue --code /tmp/before      # another checkout's ledger

``--code DIR`` runs ``ledger serve`` from DIR (``git archive REV | tar -x -C DIR``)
with this interpreter and dependencies; the floor always runs from this tree.
``--compare DIR`` serves DIR's ledger as well, on the same log, measured in the
same rounds (``compare_*``, and this tree's rate over it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.services import free_port, ledger_database, own_redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-service-token-0123456789"
TOKENS = f"service:{TOKEN},operator:bench-operator-token-0123456789"
BODY = (
    '{"userId":"user-%d","placeId":"place-1","missionId":"mission-1","amount":10000,'
    '"currency":"KRW","idempotencyKey":"%s","metadata":{"qrToken":"qr-%s","receiptId":"r-1"}}'
)


# -- the client -------------------------------------------------------------------


def _request(key: str, n: int) -> bytes:
    body = (BODY % (n % 1000, key, key)).encode()
    head = (
        "POST /api/settlements HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, work: Iterator[tuple[int, str]], latencies: list[float], codes: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n, key in work:
            message = _request(key, n)
            started = time.perf_counter()
            writer.write(message)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            codes[int(head.split(b" ", 2)[1])] += 1
    finally:
        writer.close()


async def _load(port: int, clients: int, total: int, prefix: str) -> dict[str, Any]:
    work = ((n, f"{prefix}-{n}") for n in range(total))
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, work, latencies, codes) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": total,
        "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "codes": {str(code): count for code, count in sorted(codes.items())},
    }


def load(port: int, clients: int, total: int) -> dict[str, Any]:
    return asyncio.run(_load(port, clients, total, uuid.uuid4().hex[:12]))


# -- the servers ------------------------------------------------------------------


def _wait_up(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{proc.args!r} did not come up")


@contextmanager
def server(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[tuple[int, int]]:
    """A server in its own process group on a free port; yields (port, pid)."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_up(port, proc, time.monotonic() + 90)
        # every worker answers before timing starts (uvicorn starts them one by one)
        load(port, 8, 64)
        yield port, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def memory(pid: int) -> list[dict[str, Any]]:
    """Resident and peak memory (MiB) of the server process and each of its workers."""
    rows = []
    for member in [pid, *_children(pid)]:
        status = _status(member)
        if status:
            rows.append(
                {
                    "pid": member,
                    "role": "supervisor" if member == pid else "worker",
                    "rss_mib": round(status.get("VmRSS", 0) / 1024, 1),
                    "peak_mib": round(status.get("VmHWM", 0) / 1024, 1),
                }
            )
    return rows


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(child) for child in text.split()]
    return found + [grand for child in found for grand in _children(child)]


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


# -- a run ------------------------------------------------------------------------


def measure_backend(args: argparse.Namespace, backend: str, work: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        redis_url = stack.enter_context(own_redis(work))
        database_url = stack.enter_context(ledger_database(backend, work))
        base = {**os.environ, "LEDGER_API_TOKENS": TOKENS}
        base.pop("PYTHONPATH", None)
        ledger_env = {
            **base,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_REDIS_URL": f"{redis_url}/5",
        }
        ledger_cwd = work
        if args.code is not None:
            ledger_env["PYTHONPATH"] = str(args.code.resolve())
        else:
            ledger_env["PYTHONPATH"] = str(ROOT)
        python = sys.executable
        workers = ["--workers", str(args.workers)]
        floor_env = {**base, "PYTHONPATH": str(ROOT)}
        floor_argv = [python, "-m", "uvicorn", "bench.http_floor:create_floor", "--factory"]
        floor_argv += [*workers, "--log-level", "info"]
        ledger_argv = [python, "-m", "ledger.cli.main", "serve", *workers]
        floor_port, _ = stack.enter_context(
            server(floor_argv, floor_env, ROOT, work / f"floor-{backend}.log")
        )
        ledger_port, ledger_pid = stack.enter_context(
            server(ledger_argv, ledger_env, ledger_cwd, work / f"ledger-{backend}.log")
        )
        servers = [("floor", floor_port), ("ledger", ledger_port)]
        if args.compare is not None:  # another checkout's ledger on the same log, same run
            compare_env = {**ledger_env, "PYTHONPATH": str(args.compare.resolve())}
            compare_port, _ = stack.enter_context(
                server(ledger_argv, compare_env, ledger_cwd, work / f"compare-{backend}.log")
            )
            servers.append(("compare", compare_port))
        rounds = []
        for number in range(1, args.rounds + 1):
            row: dict[str, Any] = {"round": number}
            for name, port in servers:
                measured = load(port, args.clients, args.requests)
                row[f"{name}_concurrent"] = measured
                print(f"  {backend} round {number} {name} x{args.clients}: {measured}")
            for name, port in servers:
                row[f"{name}_sequential"] = load(port, 1, args.sequential)
                print(f"  {backend} round {number} {name} x1: {row[f'{name}_sequential']}")
            conc_f, conc_l = row["floor_concurrent"], row["ledger_concurrent"]
            row["throughput_share"] = round(conc_l["per_second"] / conc_f["per_second"], 3)
            row["p99_over_floor"] = round(conc_l["p99_ms"] / conc_f["p99_ms"], 2)
            if args.compare is not None:
                for mode in ("concurrent", "sequential"):
                    this, other = row[f"ledger_{mode}"], row[f"compare_{mode}"]
                    row[f"{mode}_over_compare"] = round(this["per_second"] / other["per_second"], 3)
            rounds.append(row)
        return {
            "backend": backend,
            "rounds": rounds,
            "median_throughput_share": statistics.median(r["throughput_share"] for r in rounds),
            "median_p99_over_floor": statistics.median(r["p99_over_floor"] for r in rounds),
            "ledger_memory": memory(ledger_pid),
        }


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="per concurrent measure")
    parser.add_argument("--sequential", type=int, default=400, help="per one-client measure")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code", type=Path, help="run ledger serve from this checkout")
    parser.add_argument(
        "--compare", type=Path, help="also serve this checkout's ledger, in the same rounds"
    )
    parser.add_argument("--tag", default="", help="added to the result file's name")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    result: dict[str, Any] = {
        "workload": "http-enqueue",
        "started": stamp,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "code": str(args.code) if args.code else "this tree",
        "compare": str(args.compare) if args.compare else None,
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("code", "compare", "backend")
        },
        "machine": {"platform": platform.platform(), "load_before": os.getloadavg()},
        "backends": [],
    }
    with tempfile.TemporaryDirectory(prefix="http-enqueue-") as folder:
        for backend in args.backend or ["sqlite", "postgres"]:
            result["backends"].append(measure_backend(args, backend, Path(folder)))
    result["machine"]["load_after"] = os.getloadavg()
    # the latest result of this workload (and tag): older ones are in git history
    name = f"http_enqueue{'-' + args.tag if args.tag else ''}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote bench/results/{name}")
    for item in result["backends"]:
        print(
            f"{item['backend']}: ledger/floor throughput {item['median_throughput_share']}, "
            f"p99 ratio {item['median_p99_over_floor']}, memory {item['ledger_memory']}"
        )


if __name__ == "__main__":
    main()
