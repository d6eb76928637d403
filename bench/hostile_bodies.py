"""Peak memory of ``ledger serve`` under parallel unauthenticated 50 MB bodies (issue 21).

Starts the server (SQLite file, tokens set) in its own process, sends N
parallel ``POST /api/settlements`` bodies of SIZE bytes without a token, and
reports the server's resident memory before the flood and its peak (``VmHWM``)
after it, with the status codes the clients saw. Not a test: a measurement.

    .venv/bin/python -m bench.hostile_bodies                 # this tree's code
    .venv/bin/python -m bench.hostile_bodies --code /tmp/old # another checkout's
    .venv/bin/python -m bench.hostile_bodies --chunked       # no Content-Length

``--code DIR`` puts DIR first on the server's PYTHONPATH, so an older version of
the package (``git archive 7106031 | tar -x -C /tmp/old``) is measured with the
same interpreter and dependencies.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROLES = ("auditor", "operator", "service")
TOKENS = ",".join(f"{role}:bench-{role}-token-0123456789" for role in ROLES)
CHUNK = 64 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def wait_up(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not come up")


def json_pieces(size: int) -> Iterator[bytes]:
    """One valid JSON document of exactly ``size`` bytes, ``{"metadata": "xxx…"}``, in pieces."""
    head, tail = b'{"metadata": "', b'"}'
    filler = size - len(head) - len(tail)
    yield head
    while filler > 0:
        yield b"x" * min(CHUNK, filler)
        filler -= CHUNK
    yield tail


def send_body(port: int, size: int, chunked: bool, token: str, results: Counter[str]) -> None:
    """One client: headers, then the body in 64 KiB pieces until sent or the server hangs up."""
    head = "POST /api/settlements HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "Content-Type: application/json\r\n"
    head += f"Authorization: Bearer {token}\r\n" if token else ""
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(head.encode())
            try:
                for piece in json_pieces(size):
                    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    sock.sendall(frame if chunked else piece)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before the body was all sent
            answer = sock.recv(64)
        results[answer.split(b" ")[1].decode() if answer else "closed"] += 1
    except OSError as exc:
        results[type(exc).__name__] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="put this checkout's package first")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--chunked", action="store_true", help="Transfer-Encoding: chunked")
    parser.add_argument("--as-service", action="store_true", help="send the service token")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hostile-bodies-"))
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{folder / 'ledger.db'}",
        "LEDGER_API_TOKENS": TOKENS,
    }
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    cli = [sys.executable, "-m", "ledger.cli.main"]
    # cwd: the temporary folder, so `python -m` does not put this tree first on sys.path
    subprocess.run([*cli, "init"], env=env, cwd=folder, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up(port, time.monotonic() + 60)
        time.sleep(1.0)
        before = rss_kib(server.pid, "VmRSS")
        results: Counter[str] = Counter()
        size = args.size_mb * 1024 * 1024
        token = "bench-service-token-0123456789" if args.as_service else ""
        clients = [
            threading.Thread(target=send_body, args=(port, size, args.chunked, token, results))
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        peak = rss_kib(server.pid, "VmHWM")
        after = rss_kib(server.pid, "VmRSS")
        version = subprocess.run(
            [sys.executable, "-c", "import ledger.http.body"],
            env=env,
            cwd=folder,
            capture_output=True,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    code = str(args.code) if args.code else "this tree"
    code += " (with BodyGuard)" if version.returncode == 0 else " (without BodyGuard)"
    mode = "chunked" if args.chunked else "Content-Length"
    mode += ", service token" if args.as_service else ", no token"
    print(
        f"code: {code}; {args.clients} x {args.size_mb} MB bodies ({mode}) "
        f"in {elapsed:.1f} s\n"
        f"server RSS before {before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB "
        f"(+{(peak - before) / 1024:.0f} MiB), after {after / 1024:.0f} MiB\n"
        f"answers: {dict(sorted(results.items()))}"
    )


if __name__ == "__main__":
    main()
