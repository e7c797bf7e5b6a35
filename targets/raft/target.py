"""The internal Raft store as a target: one server process per node, started through the node's Remote.

Processes are started skewable when the run has a clock nemesis (the vDSO patch, see nemesis/clockpatch),
so clock faults reach the store's wall clock (its leases); kill, pause and restart act on them either way.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.remote import NodeFiles
from splitbrain.control.target import DataFiles, OneProcessPerNode
from splitbrain.targets.raft.client import RaftClient
from splitbrain.targets.raft.core import BUGS

log = logging.getLogger("splitbrain.targets.raft")

PEER_PORT, CLIENT_PORT = 7000, 8000

# Spawns a command on a node and returns a process handle (kill/pause/resume/alive/wait).
Spawner = Callable[[str, Sequence[str], Mapping[str, str]], Any]


class RaftTarget(OneProcessPerNode):
    """Killable, Pausable, HasPrimaries, HasLogs, HasDataFiles. ``spawn(node, argv, env)`` starts a process
    on a node."""

    def __init__(self, addresses: Mapping[str, str], data_root: Path, spawn: Spawner, *,
                 bugs: Sequence[str] = (), seed: int = 0, tick_ms: int = 50, election_ticks: int = 10,
                 request_timeout_s: float = 2.0, files: NodeFiles | None = None) -> None:
        unknown = sorted(set(bugs) - set(BUGS))
        if unknown:
            raise ConfigError(f"unknown --bug {', '.join(unknown)}; expected one of {', '.join(sorted(BUGS))}")
        self._init_nodes(addresses, data_root, spawn, files)
        self.bugs = tuple(bugs)
        self.seed = seed
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.request_timeout_s = request_timeout_s

    def url(self, node: str) -> str:
        return f"http://{self.addresses[node]}:{CLIENT_PORT}"

    def command(self, node: str) -> list[str]:
        peers = ",".join(f"{n}={a}:{PEER_PORT}" for n, a in sorted(self.addresses.items()))
        addr = self.addresses[node]
        argv = [sys.executable, "-m", "splitbrain.targets.raft.server", "--id", node, "--listen", f"{addr}:{PEER_PORT}",
                "--client-listen", f"{addr}:{CLIENT_PORT}", "--peers", peers,
                "--data-dir", str(self.data_root / node), "--seed", str(self.seed * 1000 + self.nodes.index(node)),
                "--tick-ms", str(self.tick_ms), "--election-ticks", str(self.election_ticks),
                "--request-timeout", str(self.request_timeout_s)]
        for bug in self.bugs:
            argv += ["--bug", bug]
        return argv

    def _env(self) -> dict[str, str]:
        return {"PYTHONUNBUFFERED": "1"}

    # -- Target ----------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        self.files.make_dirs(node, self.data_root / node)
        self.start(test, node)

    def teardown(self, test: Any, node: str) -> None:
        self.stop_process(node)

    def wait_ready(self, test: Any, timeout_s: float = 30.0) -> None:
        """Until one leader is known to every node and its log has an entry of its term committed."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            statuses = {n: self.status(n) for n in self.nodes}
            leaders = {s.get("leader") for s in statuses.values() if s}
            if all(statuses.values()) and len(leaders) == 1 and None not in leaders:
                with RaftClient(self.url(self.nodes[0]), timeout=2) as c:
                    if c.put("__ready__", 1).status == "ok":
                        return
                last = "a leader, but a write failed"
            else:
                last = f"statuses {statuses}"
            time.sleep(0.1)
        raise RemoteError("raft", ["wait_ready"], f"the cluster did not elect a leader in {timeout_s:.0f} s: {last}")

    def status(self, node: str) -> dict[str, Any] | None:
        with RaftClient(self.url(node), timeout=0.5) as c:
            return c.status()

    # -- Killable / Pausable ---------------------------------------------------------------------------
    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        """The node's process: argv, environment, log file name (OneProcessPerNode starts, kills, pauses)."""
        return self.command(node), self._env(), None

    # -- HasPrimaries / HasLogs ------------------------------------------------------------------------
    def primaries(self, test: Any) -> list[str]:
        """The nodes that call themselves leader in the highest term any node reports."""
        statuses = {n: self.status(n) for n in self.nodes}
        known = {n: s for n, s in statuses.items() if s}
        if not known:
            return []
        top = max(s.get("term", 0) for s in known.values())
        return sorted(n for n, s in known.items() if s.get("role") == "leader" and s.get("term") == top)

    def log_files(self, test: Any, node: str) -> list[str]:
        return []  # the server logs to stderr, which the node's Remote already writes to nodes/<node>/

    # -- HasDataFiles ------------------------------------------------------------------------------------
    def data_files(self, test: Any, node: str) -> DataFiles:
        """One write-ahead log per node (server/storage.py), no snapshots."""
        return DataFiles(str(self.data_root / node), logs=("wal",))
