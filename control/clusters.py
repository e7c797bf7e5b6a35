"""Where a run's nodes come from: local network namespaces, Docker containers, or SSH hosts, behind one
interface. This is the only place that knows the three apart.

A ``Nodes`` value (``LocalNodes(5)``, ``DockerNodes(3)``, ``SSHNodes(hosts=...)``) is part of a test: it
checks in ``preflight`` that this machine can make such nodes (root, Docker able to start a container,
readable SSH keys), before anything of a run exists; ``open(run_id, run_path)`` gives the run's
``NodeSet`` (up/down, addresses, each node's Remote, how to spawn programs and write files there);
``leftovers`` and ``cleanup`` find and remove what a dead run left, by its run id only (the reaper and
`splitbrain cleanup` use them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from splitbrain.control.errors import ConfigError
from splitbrain.control.remote import LocalFiles, NodeFiles, Remote, RemoteFiles
from splitbrain.control.spawn import Spawner

# The iptables chains the nemeses make on a node (hook, chain). On local and Docker nodes they vanish with
# the node; a real SSH host keeps them, so the run (and the clean-up of a dead run) removes them there.
PARTITION_CHAIN, PACKET_CHAIN_IN, PACKET_CHAIN_OUT = "SB-PARTITION", "SB-PACKET-IN", "SB-PACKET-OUT"
NEMESIS_CHAINS: tuple[tuple[str, str], ...] = (("INPUT", PARTITION_CHAIN), ("INPUT", PACKET_CHAIN_IN),
                                               ("OUTPUT", PACKET_CHAIN_OUT))
MAX_NODES = 9


class NodeSet(Protocol):
    """The nodes of one run."""

    nodes: list[str]

    @property
    def addresses(self) -> dict[str, str]: ...

    def remote(self, node: str) -> Remote: ...

    def up(self) -> Any: ...

    def down(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    """A run's nodes and what a target needs to use them."""

    cluster: Any              # a NodeSet: LocalCluster, DockerCluster or SSHCluster
    files: NodeFiles
    data_root: Path

    def spawner(self, clock: Any | None) -> Spawner:
        return self.cluster.spawner(clock)


class Nodes(Protocol):
    remote: str
    count: int

    def preflight(self) -> None: ...

    def open(self, run_id: str, run_path: Path) -> Opened: ...

    def leftovers(self, run_id: str) -> list[str]: ...

    def cleanup(self, run_id: str) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...


def _check_count(count: int) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_NODES:
        raise ConfigError(f"--nodes must be a whole number from 1 to {MAX_NODES}, got {count!r}")


@dataclass(frozen=True)
class LocalNodes:
    """Each node a network namespace on this machine (needs root and iproute2)."""

    count: int = 5
    remote: str = field(default="local", init=False)

    def preflight(self) -> None:
        from splitbrain.control.local import require_root

        _check_count(self.count)
        require_root()

    def open(self, run_id: str, run_path: Path) -> Opened:
        from splitbrain.control.local import LocalCluster

        cluster = LocalCluster(run_id, self.count, log_dir=run_path / "nodes")
        return Opened(cluster, LocalFiles(), run_path / "data")

    def leftovers(self, run_id: str) -> list[str]:
        from splitbrain.control.local import run_leftovers

        return run_leftovers(run_id)

    def cleanup(self, run_id: str) -> list[str]:
        from splitbrain.control.local import teardown_run

        return teardown_run(run_id)

    def to_json(self) -> dict[str, Any]:
        return {"remote": "local", "nodes": self.count}


@dataclass(frozen=True)
class DockerNodes:
    """Each node a container of the project's node image (`splitbrain images build`)."""

    count: int = 5
    image: str | None = None
    remote: str = field(default="docker", init=False)

    def preflight(self) -> None:
        from splitbrain.control.docker import require_node_image
        from splitbrain.control.images import NODE_RECIPE

        _check_count(self.count)
        require_node_image(self.image or NODE_RECIPE.tag)

    def open(self, run_id: str, run_path: Path) -> Opened:
        from splitbrain.control.docker import DockerCluster

        # Absolute: the node resolves the path from its own working directory, and each node's data
        # directory is mounted in it at the same absolute path (so this machine's writes reach it).
        data_root = (run_path / "data").resolve()
        cluster = DockerCluster(run_id, self.count, run_path / "nodes", data_root=data_root, image=self.image)
        return Opened(cluster, LocalFiles(), data_root)

    def leftovers(self, run_id: str) -> list[str]:
        from splitbrain.control.docker import run_leftovers

        return run_leftovers(run_id)

    def cleanup(self, run_id: str) -> list[str]:
        from splitbrain.control.docker import teardown_run

        return teardown_run(run_id)

    def to_json(self) -> dict[str, Any]:
        return {"remote": "docker", "nodes": self.count, **({"image": self.image} if self.image else {})}


@dataclass(frozen=True)
class SSHNodes:
    """Real hosts reached over SSH (root there), one per node: ``hosts`` as ``node=HOST[:PORT]``."""

    hosts: tuple[str, ...]
    user: str = "root"
    key: str | None = None
    known_hosts: str | None = None
    accept_new: bool = False
    base_dir: str = "/tmp"   # the run keeps its files on the hosts under BASE_DIR/splitbrain-RUN_ID
    remote: str = field(default="ssh", init=False)

    @property
    def count(self) -> int:
        return len(self.hosts)

    def parsed(self) -> list[Any]:
        from splitbrain.control.ssh import parse_ssh_hosts

        return parse_ssh_hosts(self.hosts)

    def preflight(self) -> None:
        from splitbrain.control.local import node_names

        if not self.hosts:
            raise ConfigError("--remote ssh needs --ssh-hosts node1=HOST[:PORT],node2=HOST[:PORT],...")
        hosts = self.parsed()
        _check_count(len(hosts))
        expected = node_names(len(hosts))
        if sorted(h.node for h in hosts) != sorted(expected):
            raise ConfigError(f"--ssh-hosts: expected the nodes {', '.join(expected)}, "
                              f"got {', '.join(h.node for h in hosts)}")
        if not self.user:
            raise ConfigError("--ssh-user must not be empty")
        if not self.base_dir.startswith("/") or any(c in self.base_dir for c in "\n\0") or ".." in self.base_dir:
            raise ConfigError(f"--ssh-dir must be an absolute path on the hosts, got {self.base_dir!r}")
        for option, path in (("--ssh-key", self.key), ("--ssh-known-hosts", self.known_hosts)):
            if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                raise ConfigError(f"{option} {path}: no such readable file")

    def cluster(self, run_id: str, log_dir: Path) -> Any:
        from splitbrain.control.ssh import SSHCluster

        return SSHCluster(run_id, self.parsed(), log_dir=log_dir, user=self.user, key_file=self.key,
                          known_hosts=self.known_hosts, accept_unknown_hosts=self.accept_new,
                          base_dir=self.base_dir, iptables_chains=NEMESIS_CHAINS)

    def open(self, run_id: str, run_path: Path) -> Opened:
        cluster = self.cluster(run_id, run_path / "nodes")
        return Opened(cluster, RemoteFiles(cluster.remote), cluster.data_root)

    def leftovers(self, run_id: str) -> list[str]:
        return []  # finding out means connecting to every host: `splitbrain cleanup` does that

    def cleanup(self, run_id: str) -> list[str]:
        from splitbrain.control.ssh import teardown_run

        return teardown_run(self.cluster(run_id, Path(os.devnull)))

    def to_json(self) -> dict[str, Any]:
        return {"remote": "ssh", "nodes": self.count, "ssh_hosts": list(self.hosts), "ssh_user": self.user,
                "ssh_key": self.key, "ssh_known_hosts": self.known_hosts, "ssh_accept_new": self.accept_new,
                "ssh_dir": self.base_dir}


REMOTES = ("local", "docker", "ssh")


def nodes_from_json(d: Mapping[str, Any]) -> Nodes:
    """The ``Nodes`` that ``to_json`` wrote (test.json's ``nodes``)."""
    remote = d.get("remote", "local")
    count = d.get("nodes", 5)
    if remote == "local":
        return LocalNodes(count)
    if remote == "docker":
        return DockerNodes(count, d.get("image"))
    if remote == "ssh":
        return SSHNodes(tuple(d.get("ssh_hosts") or ()), d.get("ssh_user", "root"), d.get("ssh_key"),
                        d.get("ssh_known_hosts"), bool(d.get("ssh_accept_new", False)), d.get("ssh_dir", "/tmp"))
    raise ConfigError(f"--remote {remote!r} is not available; expected one of {', '.join(REMOTES)}")


def nodes_named(remote: str, count: int, *, ssh_hosts: Sequence[str] = (), ssh_user: str = "root",
                ssh_key: str | None = None, ssh_known_hosts: str | None = None, ssh_accept_new: bool = False,
                ssh_dir: str = "/tmp", image: str | None = None) -> Nodes:
    """The ``Nodes`` of the command line's --remote and --ssh-* options (checked for coherence)."""
    ssh_given = bool(ssh_hosts) or ssh_key is not None or ssh_known_hosts is not None or ssh_accept_new \
        or ssh_dir != "/tmp" or ssh_user != "root"
    if remote != "ssh" and ssh_given:
        raise ConfigError("the --ssh-* options go with --remote ssh")
    if remote == "ssh":
        if not ssh_hosts:
            raise ConfigError("--remote ssh needs --ssh-hosts node1=HOST[:PORT],node2=HOST[:PORT],...")
        nodes = SSHNodes(tuple(ssh_hosts), ssh_user, ssh_key, ssh_known_hosts, ssh_accept_new, ssh_dir)
        if ssh_hosts and count != nodes.count:
            raise ConfigError(f"--ssh-hosts names {nodes.count} hosts but --nodes is {count}")
        return nodes
    return nodes_from_json({"remote": remote, "nodes": count, "image": image})
