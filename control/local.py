"""The nodes of one run on this machine: one network namespace per node, joined by a bridge.

Layout for run R with n nodes (every name carries R, so cleanup finds exactly this run's things):

    sb-R-n1 .. sb-R-nN   one namespace per node; ``eth0`` holds the node's address
    sb-R-sw              the "switch" namespace: bridge ``br0``, a port ``nI`` per node and ``host``
    sb-<hash of R>       in the root namespace: the host's end of the ``host`` veth, so the harness
                         reaches every node

The bridge lives in its own namespace, not in the root one: with Docker running, the root namespace's
FORWARD policy is DROP, and bridged frames pass through it. Processes run in a cgroup per run
(``<cgroup2>/splitbrain/R/<node>/...``) so a killed run's daemons can be found and killed later.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.control.remote import (
    Cgroup,
    FreezerCgroup,
    LocalRemote,
    cgroup2_mount,
    cgroup_base,
    freezer_mount,
)

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
# Where a subnet is chosen from when none is given: 10.240.0.0/12 as /24s, starting at a place that
# depends on the run id, skipping any /24 that overlaps a route of this machine.
SUBNET_POOL = ipaddress.ip_network("10.240.0.0/12")
SUBNET_PREFIX = 24
SUBNET_LOCK = Path("/run/lock/splitbrain-subnets.lock")
KILL_WAIT_S = 5.0


def node_names(n_nodes: int) -> list[str]:
    return [f"node{i}" for i in range(1, n_nodes + 1)]


def node_netns(run_id: str, index: int) -> str:
    return f"sb-{run_id}-n{index}"


def switch_netns(run_id: str) -> str:
    return f"sb-{run_id}-sw"


def host_ifname(run_id: str) -> str:
    """The root-namespace interface of a run: interface names have at most 15 bytes, run ids more."""
    return "sb-" + hashlib.sha256(run_id.encode()).hexdigest()[:10]


def run_cgroup(run_id: str) -> Cgroup | None:
    """The cgroup of run ``run_id`` on this machine (v2, or the v1 freezer), None where neither works."""
    base = cgroup_base()
    return base.child(run_id) if base is not None else None


def run_cgroups(run_id: str) -> list[Cgroup]:
    """Every place run ``run_id``'s cgroup can be (a dead run may have used either hierarchy)."""
    places: list[Cgroup] = []
    if (mount := cgroup2_mount()) is not None:
        places.append(Cgroup(mount / "splitbrain" / run_id))
    if (mount := freezer_mount()) is not None:
        places.append(FreezerCgroup(mount / "splitbrain" / run_id))
    return places


def run_netns_pattern(run_id: str) -> re.Pattern[str]:
    """Exactly this run's namespaces (run "a" must not match run "a-n1"'s)."""
    return re.compile(rf"^sb-{re.escape(run_id)}-(n\d+|sw)$")


def validate_run_id(run_id: str) -> None:
    if not RUN_ID.match(run_id):
        raise ConfigError(
            f"run id {run_id!r}: expected 1-40 characters of letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        raise ConfigError("local nodes need root (network namespaces)")
    if shutil.which("ip") is None:
        raise ConfigError("local nodes need the `ip` command (apt-get install iproute2)")


def routed_networks(route_json: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations in ``ip -j -4 route show table all`` output (default routes left out)."""
    networks = []
    for route in json.loads(route_json or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        try:
            networks.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            continue
    return [n for n in networks if isinstance(n, ipaddress.IPv4Network)]


def free_subnet(
    run_id: str, taken: Sequence[ipaddress.IPv4Network], pool: ipaddress.IPv4Network = SUBNET_POOL
) -> ipaddress.IPv4Network:
    """The first /24 of ``pool``, from a place chosen by the run id, that overlaps nothing in ``taken``."""
    candidates = list(pool.subnets(new_prefix=SUBNET_PREFIX))
    start = int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % len(candidates)
    for i in range(len(candidates)):
        candidate = candidates[(start + i) % len(candidates)]
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise ConfigError(f"no free /{SUBNET_PREFIX} left in {pool} for local nodes; pass a subnet")


def _ip(
    args: Sequence[str], *, batch: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *args] + (["-batch", "-"] if batch is not None else [])
    done = subprocess.run(cmd, input=batch, capture_output=True, text=True)
    if check and done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[0]
        raise ConfigError(f"setting up local nodes: ip {' '.join(args) or '-batch'}: {reason}")
    return done


def _current_routes() -> list[ipaddress.IPv4Network]:
    return routed_networks(_ip(["-j", "-4", "route", "show", "table", "all"]).stdout)


@contextmanager
def _subnet_lock() -> Iterator[None]:
    """Two runs starting at once must not pick the same subnet: the check and the claim happen together."""
    SUBNET_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(SUBNET_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LocalCluster:
    """``n_nodes`` local nodes for run ``run_id``. ``up()`` builds them, ``down()`` removes every trace
    (idempotent); as a context manager, both. Needs root."""

    def __init__(
        self,
        run_id: str,
        n_nodes: int,
        subnet: str | None = None,
        log_dir: Path | None = None,
    ) -> None:
        validate_run_id(run_id)
        if not 1 <= n_nodes <= 200:
            raise ConfigError(f"local nodes: expected 1 to 200 nodes, got {n_nodes}")
        self.run_id = run_id
        self.nodes = node_names(n_nodes)
        self.requested_subnet = _parse_subnet(subnet, n_nodes) if subnet is not None else None
        self.subnet: ipaddress.IPv4Network | None = None
        self.log_dir = log_dir or Path(tempfile.gettempdir()) / f"splitbrain-{run_id}" / "nodes"
        self.netns = {node: node_netns(run_id, i) for i, node in enumerate(self.nodes, 1)}
        self.switch = switch_netns(run_id)
        self.host_ifname = host_ifname(run_id)
        self.cgroup = run_cgroup(run_id)
        self.remotes: dict[str, LocalRemote] = {}

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def addresses(self) -> dict[str, str]:
        """node name -> IPv4 address (node i gets the i-th address of the subnet)."""
        hosts = self._hosts()
        return {node: str(hosts[i]) for i, node in enumerate(self.nodes)}

    @property
    def host_address(self) -> str:
        """The harness's own address on the nodes' network (the last address of the subnet)."""
        return str(self._hosts()[-1])

    def _hosts(self) -> list[ipaddress.IPv4Address]:
        if self.subnet is None:
            raise ConfigError("local nodes: the cluster is not up")
        return list(self.subnet.hosts())

    def remote(self, node: str) -> LocalRemote:
        return self.remotes[node]

    def spawner(self, clock: Any | None = None) -> Any:
        from splitbrain.control.spawn import local_spawner

        return local_spawner(self, clock)

    # -- lifecycle -------------------------------------------------------------------------------------

    def up(self) -> LocalCluster:
        require_root()
        if _run_namespaces(self.run_id):
            # Not ours to remove: it may be a live run that happens to share the id.
            raise ConfigError(
                f"run {self.run_id} already has namespaces on this machine; if that run is dead, "
                f"`splitbrain cleanup {self.run_id}` removes what it left"
            )
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _build(self) -> None:
        if self.cgroup is not None:
            self.cgroup.create()
        with _subnet_lock():
            taken = _current_routes()
            if self.requested_subnet is not None:
                clash = [str(t) for t in taken if self.requested_subnet.overlaps(t)]
                if clash:
                    raise ConfigError(
                        f"subnet {self.requested_subnet} overlaps routes of this machine: {clash}"
                    )
                self.subnet = self.requested_subnet
            else:
                self.subnet = free_subnet(self.run_id, taken)
            prefix = self.subnet.prefixlen
            root = [f"netns add {self.switch}"] + [f"netns add {ns}" for ns in self.netns.values()]
            root.append(f"link add {self.host_ifname} type veth peer name host netns {self.switch}")
            root += [
                f"link add eth0 netns {ns} type veth peer name n{i} netns {self.switch}"
                for i, ns in enumerate(self.netns.values(), 1)
            ]
            root += [
                f"addr add {self.host_address}/{prefix} dev {self.host_ifname}",
                f"link set {self.host_ifname} up",
            ]
            _ip([], batch="\n".join(root) + "\n")
        switch = [
            "link set lo up",
            "link add br0 type bridge",
            "link set br0 up",
            "link set host master br0 up",
        ]
        switch += [f"link set n{i} master br0 up" for i in range(1, len(self.nodes) + 1)]
        _ip(["-n", self.switch], batch="\n".join(switch) + "\n")
        for node, address in self.addresses.items():
            ns = self.netns[node]
            _ip(["-n", ns], batch=f"link set lo up\naddr add {address}/{prefix} dev eth0\nlink set eth0 up\n")
            node_cgroup = self.cgroup.child(node) if self.cgroup is not None else None
            self.remotes[node] = LocalRemote(node, ns, self.log_dir / node, node_cgroup)

    def down(self) -> None:
        """Kill every process of this run's nodes and remove its namespaces, interface and cgroups."""
        teardown_run(self.run_id)
        self.remotes.clear()

    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()


def _parse_subnet(subnet: str, n_nodes: int) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as e:
        raise ConfigError(f"subnet {subnet!r}: expected an IPv4 network such as 10.240.7.0/24 ({e})") from e
    if not isinstance(network, ipaddress.IPv4Network):
        raise ConfigError(f"subnet {subnet!r}: expected an IPv4 network")
    if network.num_addresses - 2 < n_nodes + 1:
        raise ConfigError(f"subnet {subnet}: too small for {n_nodes} nodes and the host")
    return network


def _run_namespaces(run_id: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    pattern = run_netns_pattern(run_id)
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [name for name in names if pattern.match(name)]


def _netns_pids(netns: str) -> list[int]:
    listing = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    return [int(p) for p in listing.split() if p.isdigit()]


def _kill_run_processes(run_id: str, namespaces: Sequence[str]) -> int:
    """SIGKILL every process of the run: its cgroup (catches daemons that setsid'd) and anything still
    inside its namespaces (catches processes started without the cgroup). Returns how many were found."""
    cgroups = [c for c in run_cgroups(run_id) if c.exists()]
    found = 0
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        pids = {pid for cgroup in cgroups for pid in cgroup.pids()}
        for ns in namespaces:
            pids.update(_netns_pids(ns))
        if not pids:
            break
        found = max(found, len(pids))
        for cgroup in cgroups:
            cgroup.signal(signal.SIGKILL)
            cgroup.freeze(False)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return found


def teardown_run(run_id: str) -> list[str]:
    """Remove what run ``run_id`` has on this machine, found by its own names only. Idempotent; returns
    what it removed, for `splitbrain cleanup` to report."""
    validate_run_id(run_id)
    require_root()
    removed: list[str] = []
    namespaces = _run_namespaces(run_id)
    killed = _kill_run_processes(run_id, namespaces)
    if killed:
        removed.append(f"{killed} process(es)")
    for cgroup in run_cgroups(run_id):
        if cgroup.exists():
            cgroup.remove()
            removed.append(f"cgroup {cgroup.path}")
    ifname = host_ifname(run_id)
    if _ip(["link", "del", ifname], check=False).returncode == 0:
        removed.append(f"interface {ifname}")
    for ns in namespaces:
        if _ip(["netns", "del", ns], check=False).returncode == 0:
            removed.append(f"namespace {ns}")
    return removed


def run_leftovers(run_id: str) -> list[str]:
    """What run ``run_id`` still has on this machine (namespaces, its cgroup), without removing it."""
    found = _run_namespaces(run_id)
    for cgroup in run_cgroups(run_id):
        if cgroup.exists():
            found.append(f"cgroup {cgroup.path}")
    return found


LEFTOVER_NETNS = re.compile(r"^sb-(.+)-(n\d+|sw)$")


def leftover_runs() -> list[str]:
    """Run ids that still have namespaces or cgroups on this machine (for `splitbrain cleanup`)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    runs = {
        m.group(1)
        for line in listing.splitlines()
        if line.strip() and (m := LEFTOVER_NETNS.match(line.split()[0]))
    }
    for mount in (cgroup2_mount(), freezer_mount()):
        if mount is not None and (mount / "splitbrain").is_dir():
            runs |= {p.name for p in (mount / "splitbrain").iterdir() if p.is_dir()}
    return sorted(r for r in runs if RUN_ID.match(r))


def cleanup_run(run_id: str) -> list[str]:
    """What `splitbrain cleanup RUN_ID` calls after a run was killed: same as ``LocalCluster.down``."""
    return teardown_run(run_id)
