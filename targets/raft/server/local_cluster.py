"""A cluster of real server processes on loopback, for integration tests and the benchmark.

Each node is ``python -m splitbrain.targets.raft.server`` in its own process group with its own data directory and
log file under ``base_dir``. ``stop()`` (also on ``with`` exit) kills every process this cluster started,
by pid, even when a test failed half way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from splitbrain.targets.raft.client import RaftClient

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalCluster:
    def __init__(self, base_dir: str | os.PathLike[str], size: int = 3, *, bugs: Iterable[str] = (),
                 tick_ms: int = 50, seed: int = 1, extra_args: Iterable[str] = ()) -> None:
        self.base_dir = Path(base_dir)
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        self.peer_ports = {node: free_port() for node in self.ids}
        self.client_ports = {node: free_port() for node in self.ids}
        self.bugs = tuple(bugs)
        self.tick_ms = tick_ms
        self.seed = seed
        self.extra_args = tuple(extra_args)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, node: str) -> str:
        return f"http://{HOST}:{self.client_ports[node]}"

    def data_dir(self, node: str) -> Path:
        return self.base_dir / node

    def log_path(self, node: str) -> Path:
        return self.base_dir / f"{node}.log"

    def command(self, node: str) -> list[str]:
        peers = ",".join(f"{n}={HOST}:{p}" for n, p in self.peer_ports.items())
        cmd = [sys.executable, "-m", "splitbrain.targets.raft.server", "--id", node,
               "--listen", f"{HOST}:{self.peer_ports[node]}", "--client-listen", f"{HOST}:{self.client_ports[node]}",
               "--peers", peers, "--data-dir", str(self.data_dir(node)), "--tick-ms", str(self.tick_ms),
               "--seed", str(self.seed)]
        for bug in self.bugs:
            cmd += ["--bug", bug]
        return cmd + list(self.extra_args)

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for node in self.ids:
            self.start_node(node)

    def start_node(self, node: str) -> None:
        if node in self.processes and self.processes[node].poll() is None:
            raise RuntimeError(f"{node} is already running")
        log = self._logs.get(node) or open(self.log_path(node), "ab")  # noqa: SIM115 (closed in stop)
        self._logs[node] = log
        self.processes[node] = subprocess.Popen(self.command(node), stdout=log, stderr=log,
                                                start_new_session=True)

    def kill_node(self, node: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[node]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def running(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is None]

    def client(self, node: str, timeout: float = 5.0) -> RaftClient:
        return RaftClient(self.url(node), timeout)

    def statuses(self, nodes: Iterable[str] | None = None) -> dict[str, dict]:
        found = {}
        for node in nodes if nodes is not None else self.running():
            with self.client(node, timeout=1.0) as c:
                status = c.status()
            if status is not None:
                found[node] = status
        return found

    def wait_for_leader(self, timeout_s: float = 20.0, among: Iterable[str] | None = None) -> str:
        """The id of a leader that every reachable node of ``among`` (default: running) agrees on."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = list(among) if among is not None else self.running()
            statuses = self.statuses(nodes)
            leaders = {s["leader"] for s in statuses.values()}
            if len(statuses) == len(nodes) and len(leaders) == 1:
                leader = leaders.pop()
                if leader in statuses and statuses[leader]["role"] == "leader":
                    return str(leader)
            time.sleep(0.05)
        raise TimeoutError(f"no agreed leader within {timeout_s} s: {self.statuses()}")

    def wait_until(self, node: str, predicate: Callable[[dict], bool], timeout_s: float = 20.0) -> dict:
        """Poll ``node``'s /status until ``predicate(status)``; returns that status."""
        deadline = time.monotonic() + timeout_s
        status: dict | None = None
        while time.monotonic() < deadline:
            status = self.statuses([node]).get(node)
            if status is not None and predicate(status):
                return status
            time.sleep(0.05)
        raise TimeoutError(f"{node}: condition not met within {timeout_s} s (last status {status})")
