"""Run the stub on a loopback port in a thread (tests and the demo)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from ledger.providers.toss.stub import StubToss
from ledger.providers.toss.stub_app import stub_app


@dataclass
class StubServer:
    """A running stub: ``url`` to point ``LEDGER_TOSS_API_URL`` at; ``stop()`` ends it."""

    stub: StubToss
    url: str
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def serve_stub(stub: StubToss, *, start_timeout: float = 10.0) -> StubServer:
    """Serve ``stub`` on 127.0.0.1 at a free port; returns once it accepts connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        stub_app(stub), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="toss-stub", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the Toss stub did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    return StubServer(stub, f"http://127.0.0.1:{port}", server, thread)
