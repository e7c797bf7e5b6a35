"""A load balancer (nginx or HAProxy) in front of replicated backends, on a run's nodes.

Layout: the first node (node1) runs only the balancer; every other node runs a Raft server of the
internal store (targets/raft) and a backend (targets/lb/backend.py) that serves HTTP from that store, so
at least 4 nodes: the balancer and a 3-node store. Clients talk only to the balancer.

Faults act on a node's processes: killing or pausing node1 stops the balancer; killing or pausing a
backend node stops its backend and its Raft server together (a crashed or frozen machine). Every program
is started as itself (nginx, haproxy, python), so the clock nemesis' vDSO patch reaches it at exec.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.remote import NodeFiles
from splitbrain.control.target import OneProcessPerNode
from splitbrain.targets.lb.configs import BALANCERS, RETRY_POLICIES, haproxy_config, nginx_config
from splitbrain.targets.raft.target import RaftTarget

log = logging.getLogger("splitbrain.targets.lb")

LB_PORT, BACKEND_PORT = 8080, 9000
BINARIES = {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy"}
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def lb_options(target_opts: Mapping[str, Any]) -> tuple[str, str]:
    """(balancer, retry policy) from ``--target-opt lb=... retry=...``; ConfigError names the choices."""
    balancer = str(target_opts.get("lb", "nginx"))
    retry = str(target_opts.get("retry", "safe"))
    if balancer not in BALANCERS:
        raise ConfigError(f"--target-opt lb={balancer}: expected one of {', '.join(BALANCERS)}")
    if retry not in RETRY_POLICIES:
        raise ConfigError(f"--target-opt retry={retry}: expected one of {', '.join(RETRY_POLICIES)}")
    return balancer, retry


class LbTarget(OneProcessPerNode):
    """Killable, Pausable, HasPrimaries (the store's leader), WaitsReady. Each node has one process of its
    own (the balancer, or a backend: OneProcessPerNode) and a backend node also the store's server."""

    def __init__(self, addresses: Mapping[str, str], data_root: Path, spawn: Any, *, balancer: str = "nginx",
                 retry: str = "safe", seed: int = 0, files: NodeFiles | None = None) -> None:
        nodes = sorted(addresses)
        if len(nodes) < 4:
            raise ConfigError(f"the lb target needs at least 4 nodes (a balancer and 3 backends), got {len(nodes)}")
        self._init_nodes(addresses, data_root, spawn, files)
        self.balancer = balancer
        self.retry = retry
        self.lb_node = nodes[0]
        self.backend_nodes = nodes[1:]
        self.store = RaftTarget({n: self.addresses[n] for n in self.backend_nodes}, self.data_root, spawn,
                                seed=seed, files=self.files)

    def url(self) -> str:
        """Where clients send their requests: the balancer."""
        return f"http://{self.addresses[self.lb_node]}:{LB_PORT}"

    def backend_address(self, node: str) -> str:
        return f"{self.addresses[node]}:{BACKEND_PORT}"

    # -- the balancer's files and the commands -------------------------------------------------------------
    @property
    def lb_dir(self) -> Path:
        return self.data_root / self.lb_node

    def lb_config_path(self) -> Path:
        return self.lb_dir / ("nginx.conf" if self.balancer == "nginx" else "haproxy.cfg")

    def write_lb_config(self) -> None:
        """The balancer's config file (and nginx's temp directories), on the balancer's node."""
        listen = f"{self.addresses[self.lb_node]}:{LB_PORT}"
        backends = [self.backend_address(n) for n in self.backend_nodes]
        if self.balancer == "nginx":
            self.files.make_dirs(self.lb_node, *(self.lb_dir / sub for sub in NGINX_TEMP_DIRS))
            text = nginx_config(listen, backends, self.retry, self.lb_dir)
        else:
            text = haproxy_config(listen, backends, self.retry)
        self.files.write_text(self.lb_node, self.lb_config_path(), text)

    def lb_command(self) -> list[str]:
        config = str(self.lb_config_path())
        if self.balancer == "nginx":
            return [BINARIES["nginx"], "-c", config, "-p", str(self.lb_dir), "-e", "stderr"]
        return [BINARIES["haproxy"], "-f", config, "-db"]

    def backend_command(self, node: str) -> list[str]:
        return [sys.executable, "-m", "splitbrain.targets.lb.backend", "--listen", self.backend_address(node),
                "--store", self.store.url(node)]

    def _env(self) -> dict[str, str]:
        return {"PYTHONUNBUFFERED": "1"}

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        """The node's own process: the balancer on the first node, a backend on the others."""
        if node == self.lb_node:
            return self.lb_command(), {}, f"{self.balancer}.log"
        return self.backend_command(node), self._env(), "backend.log"

    # -- Target ------------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        if node == self.lb_node:
            self.write_lb_config()
        else:
            self.store.setup(test, node)
        OneProcessPerNode.start(self, test, node)

    def teardown(self, test: Any, node: str) -> None:
        self.stop_process(node)
        if node != self.lb_node:
            self.store.teardown(test, node)

    def wait_ready(self, test: Any, timeout_s: float = 30.0) -> None:
        """Until the store has a leader and a read through the balancer comes back from a backend."""
        deadline = time.monotonic() + timeout_s
        self.store.wait_ready(test, timeout_s)
        last = "no answer"
        while time.monotonic() < deadline:
            ok, last = self._read_through_balancer()
            if ok:
                return
            time.sleep(0.1)
        raise RemoteError(self.lb_node, ["wait_ready"],
                          f"no read through {self.balancer} succeeded in {timeout_s:.0f} s: {last}")

    def _read_through_balancer(self) -> tuple[bool, str]:
        conn = http.client.HTTPConnection(self.addresses[self.lb_node], LB_PORT, timeout=1.0)
        try:
            conn.request("GET", "/read")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            return False, f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        try:
            decoded = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            decoded = None
        ok = response.status == 200 and isinstance(decoded, dict) and isinstance(decoded.get("value"), list)
        return ok, f"HTTP {response.status}: {body[:200]!r}"

    # -- Killable / Pausable: the node's own process, and on a backend node the store's server too --------
    def start(self, test: Any, node: str) -> None:
        if node != self.lb_node:
            self.store.start(test, node)
        OneProcessPerNode.start(self, test, node)

    def kill(self, test: Any, node: str) -> None:
        OneProcessPerNode.kill(self, test, node)
        if node != self.lb_node:
            self.store.kill(test, node)

    def pause(self, test: Any, node: str) -> None:
        OneProcessPerNode.pause(self, test, node)
        if node != self.lb_node:
            self.store.pause(test, node)

    def resume(self, test: Any, node: str) -> None:
        if node != self.lb_node:
            self.store.resume(test, node)
        OneProcessPerNode.resume(self, test, node)

    # -- HasPrimaries ------------------------------------------------------------------------------------
    def primaries(self, test: Any) -> list[str]:
        """The store's leader: the backend node whose loss hurts most."""
        return self.store.primaries(test)

