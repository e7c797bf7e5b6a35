"""etcd as a target: one ``/usr/bin/etcd`` process per node, started through the run's spawn callback.

The etcd binary itself is argv[0] (no wrapper shell), so kill and pause reach it through the node's
cgroup and, with a clock nemesis, the vDSO clock patch is applied at its exec. Each member listens on its
node's own address only (peers on 2380, clients on 2379, inside the node's network namespace); its data
directory is ``data_root/<node>``, kept across a kill so a restarted member rejoins with its log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from splitbrain.control.errors import RemoteError
from splitbrain.control.remote import NodeFiles
from splitbrain.control.target import DataFiles, OneProcessPerNode

log = logging.getLogger("splitbrain.targets.etcd")

ETCD = "/usr/bin/etcd"
PEER_PORT, CLIENT_PORT = 2380, 2379
HEARTBEAT_MS, ELECTION_MS = 50, 500  # 10x apart, as etcd advises; a leader cut off is replaced in ~1 s
READ_MODES = ("linearizable", "serializable")

Spawner = Callable[..., Any]

# A proxy from the harness's environment would sit between members (Go's HTTP transport honours it) and
# between etcd's JSON gateway and its own gRPC server: members talk to each other directly, always.
NO_PROXY_ENV = {name: "" for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                      "all_proxy", "GRPC_PROXY", "grpc_proxy")}


class EtcdTarget(OneProcessPerNode):
    """Killable, Pausable, HasPrimaries, WaitsReady. ``spawn(node, argv, env, log)`` starts a process."""

    def __init__(self, addresses: Mapping[str, str], data_root: Path, spawn: Spawner, *,
                 read: str = "linearizable", cluster_token: str = "splitbrain",
                 files: NodeFiles | None = None) -> None:
        if read not in READ_MODES:
            raise ValueError(f"etcd --read {read!r}: expected one of {', '.join(READ_MODES)}")
        self._init_nodes(addresses, data_root, spawn, files)
        self.read = read
        self.cluster_token = cluster_token

    def url(self, node: str) -> str:
        return f"http://{self.addresses[node]}:{CLIENT_PORT}"

    def peer_url(self, node: str) -> str:
        return f"http://{self.addresses[node]}:{PEER_PORT}"

    def command(self, node: str) -> list[str]:
        initial_cluster = ",".join(f"{n}={self.peer_url(n)}" for n in self.nodes)
        return [ETCD, "--name", node, "--data-dir", str(self.data_root / node),
                "--listen-peer-urls", self.peer_url(node), "--initial-advertise-peer-urls", self.peer_url(node),
                "--listen-client-urls", self.url(node), "--advertise-client-urls", self.url(node),
                "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.cluster_token,
                "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
                "--logger", "zap", "--log-outputs", "stderr"]

    # -- Target ----------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        # etcd warns about (and 3.5 refuses) a data dir others can read
        self.files.make_dirs(node, self.data_root / node, mode=0o700)
        self.start(test, node)

    def teardown(self, test: Any, node: str) -> None:
        self.stop_process(node)

    def wait_ready(self, test: Any, timeout_s: float = 30.0) -> None:
        """Until every member names the same leader, a write commits, and every member serves a
        linearizable read (so no client starts against a member still catching up)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            statuses = {n: self.status(n) for n in self.nodes}
            leaders = {s.get("leader") for s in statuses.values() if s}
            if all(statuses.values()) and len(leaders) == 1 and None not in leaders:
                if self._serves(self.nodes[0], "/v3/kv/put", {"key": "X19yZWFkeV9f", "value": "MQ=="}) and \
                        all(self._serves(n, "/v3/kv/range", {"key": "X19yZWFkeV9f"}) for n in self.nodes):
                    return
                last = "a leader, but a write or a read failed"
            else:
                last = f"statuses {statuses}"
            time.sleep(0.1)
        raise RemoteError("etcd", ["wait_ready"], f"the cluster did not serve in {timeout_s:.0f} s: {last}")

    def _serves(self, node: str, path: str, body: dict[str, Any]) -> bool:
        try:
            r = httpx.post(self.url(node) + path, json=body, timeout=2.0, trust_env=False)
            answer = r.json()
        except (httpx.HTTPError, ValueError):
            return False
        return r.status_code == 200 and isinstance(answer, dict) and "error" not in answer

    def status(self, node: str) -> dict[str, Any] | None:
        """The member's /v3/maintenance/status (member id in header.member_id, the leader's id in
        leader, its term in raftTerm), or None when it does not answer within half a second."""
        try:
            r = httpx.post(self.url(node) + "/v3/maintenance/status", json={}, timeout=0.5, trust_env=False)
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        if r.status_code != 200 or not isinstance(body, dict) or "error" in body:
            return None
        return body

    # -- Killable / Pausable ---------------------------------------------------------------------------
    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        """The node's process: argv, environment, log file name (OneProcessPerNode starts, kills, pauses)."""
        return self.command(node), NO_PROXY_ENV, "etcd.log"

    # -- HasPrimaries / HasLogs ------------------------------------------------------------------------
    def primaries(self, test: Any) -> list[str]:
        """The members that are the leader in the highest term any member reports."""
        return leaders_of({n: self.status(n) for n in self.nodes})

    def log_files(self, test: Any, node: str) -> Sequence[str]:
        return []  # etcd logs to stderr, which the spawn callback writes to nodes/<node>/etcd.log

    # -- HasDataFiles -----------------------------------------------------------------------------------
    def data_files(self, test: Any, node: str) -> DataFiles:
        """etcd 3.4's member directory: the WAL segments (preallocated to 64 MB, so most of a new segment is
        zeros), the raft snapshots, and bbolt's key-value file."""
        return DataFiles(str(self.data_root / node), logs=("member/wal/*.wal",), snapshots=("member/snap/*.snap",),
                         other=("member/snap/db",))


def leaders_of(statuses: Mapping[str, dict[str, Any] | None]) -> list[str]:
    """From each member's status: the members whose own id is the leader its highest-term peers name."""
    known = {n: s for n, s in statuses.items() if s}
    if not known:
        return []
    term = {n: int(s.get("raftTerm") or 0) for n, s in known.items()}
    top = max(term.values())
    return sorted(n for n, s in known.items()
                  if term[n] == top and s.get("leader") and str(s.get("leader")) == str(s.get("header", {}).get("member_id")))

