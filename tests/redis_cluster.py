"""A real local Redis Cluster for tests: three masters with one replica each, on loopback.

Started once per session (``redis_cluster`` fixture) on private ports, in a temporary
folder, without persistence; torn down at the end. A node can be killed and started
again (``LocalCluster.kill`` / ``restart``): it rejoins from its ``nodes.conf`` as a
replica of whoever took its slots. Locally a cluster that cannot start skips the tests
that need it; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.backends import unavailable

MASTERS = 3
#: short, so a killed master's replica is promoted within seconds (default 15 s)
NODE_TIMEOUT_MS = 2000


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections left in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_ports(count: int) -> list[int]:
    """``count`` ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55_000 and port not in ports and _port_free(port + 10_000):
            ports.append(port)
    return ports


@dataclass
class LocalCluster:
    """Six redis-server processes forming one cluster, in ``folder``."""

    folder: Path
    ports: list[int]
    killed: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        """The URL of one node (any node will do: the client learns the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True)

    def start_node(self, port: int) -> None:
        directory = self.folder / str(port)
        directory.mkdir(exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        subprocess.run(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--dir", str(directory),
                "--pidfile", str(directory / "redis.pid"),
                "--logfile", str(directory / "redis.log"),
                "--save", "",
                "--appendonly", "no",
                "--maxmemory-policy", "noeviction",
                "--daemonize", "yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        self.killed.discard(port)

    def pid(self, port: int) -> int | None:
        path = self.folder / str(port) / "redis.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self, port: int) -> None:
        """SIGKILL one node (what a crashed host does)."""
        pid = self.pid(port)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed.add(port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _port_free(port):
            time.sleep(0.05)

    def restart(self, port: int) -> None:
        """Start a killed node again; it rejoins as a replica of its slots' new master."""
        (self.folder / str(port) / "redis.pid").unlink(missing_ok=True)
        self.start_node(port)
        self.wait_ok(30)
        self.wait_for(lambda: self._replicating(port), 30, f"node {port} to replicate again")

    def failover(self, replica: int, master: int) -> None:
        """``CLUSTER FAILOVER`` on ``replica``; returns once ``master`` replicates from it."""
        self.node(replica).cluster("failover")
        self.wait_for(lambda: self._replicating(master), 30, f"node {master} to be a replica")

    def _replicating(self, port: int) -> bool:
        info = self.node(port).info("replication")
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def stop(self) -> None:
        for port in self.ports:
            if port not in self.killed:
                self.kill(port)

    def cluster_ok(self) -> bool:
        for port in self.ports:
            if port in self.killed:
                continue
            try:
                if self.node(port).cluster("info")["cluster_state"] != "ok":
                    return False
            except redis.RedisError:
                return False
        return True

    def wait_ok(self, timeout: float) -> None:
        self.wait_for(self.cluster_ok, timeout, "cluster_state:ok on every node")

    @staticmethod
    def wait_for(predicate: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():  # type: ignore[operator]
                    return
            except (redis.RedisError, LookupError):
                pass  # a node restarting, or a slot between two masters
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def master_of(self, key: str) -> int:
        """The port of the live master that serves ``key``'s slot now."""
        port = self.serving(key)
        if port is None:
            raise LookupError(f"no live master serves {key!r}")
        return port

    def serving(self, key: str) -> int | None:
        """The port of the live master that serves ``key``'s slot (None between masters)."""
        node = self.node(self.live_port())
        slot = int(node.cluster("keyslot", key))
        for port, flags, ranges in _nodes(node):
            live = "master" in flags and "fail" not in flags and port not in self.killed
            if live and any(start <= slot <= end for start, end in ranges):
                return port
        return None

    def replica_of(self, master_port: int) -> int:
        """The port of a live replica of the master on ``master_port``."""
        for port in self.ports:
            if port in self.killed or port == master_port:
                continue
            info = self.node(port).info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == master_port:
                return port
        raise LookupError(f"no live replica of {master_port}")

    def live_port(self) -> int:
        return next(port for port in self.ports if port not in self.killed)

    def flushall(self) -> None:
        """FLUSHALL on every master (what losing the whole cluster's data looks like)."""
        client = self.client()
        try:
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        finally:
            client.close()


def _nodes(node: redis.Redis) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """(port, flags, slot ranges) of every node, as ``node`` sees the cluster."""
    parsed = node.execute_command("CLUSTER NODES")  # redis-py parses it into a dict
    found: list[tuple[int, str, list[tuple[int, int]]]] = []
    for address, info in parsed.items():
        ranges = [(int(pair[0]), int(pair[-1])) for pair in info["slots"]]
        found.append((int(address.rsplit(":", 1)[1]), str(info["flags"]), ranges))
    return found


def start_cluster(folder: Path) -> LocalCluster:
    """Start six nodes and join them: three masters, one replica each."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("Redis Cluster", "redis-server or redis-cli not found")
    cluster = LocalCluster(folder, free_cluster_ports(2 * MASTERS))
    try:
        for port in cluster.ports:
            cluster.start_node(port)
        cluster.wait_for(
            lambda: all(cluster.node(p).ping() for p in cluster.ports), 20, "every node"
        )
        created = subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in cluster.ports),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create: {created.stdout}{created.stderr}")
        cluster.wait_ok(60)
        cluster.wait_for(lambda: _replicas_up(cluster), 60, "every replica in sync")
    except (OSError, subprocess.SubprocessError, RuntimeError, TimeoutError) as exc:
        cluster.stop()
        unavailable("Redis Cluster", exc)
    return cluster


def _replicas_up(cluster: LocalCluster) -> bool:
    roles = [cluster.node(port).info("replication") for port in cluster.ports]
    replicas = [info for info in roles if info.get("role") == "slave"]
    return len(replicas) == MASTERS and all(
        info.get("master_link_status") == "up" for info in replicas
    )


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
