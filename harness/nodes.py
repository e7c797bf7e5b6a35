"""Starting target processes on a run's nodes: local nodes (skewable when the run has a clock nemesis) or
SSH hosts.

A skewable process is started with the vDSO patch (nemesis/clockpatch.py) at the exec of the real
program, inside the node's network namespace and cgroup, and registered with the clock nemesis so its
node's offset reaches it; kill and pause act on its cgroup like any other process of the node.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from harness.cluster import LocalCluster
from harness.errors import ConfigError
from harness.remote import Cgroup, LocalProcess

_names = itertools.count(1)


def local_spawner(cluster: LocalCluster, clock: Any | None, default_log: str = "server.log"):
    """``spawn(node, argv, env, log=None) -> process handle`` for a target's processes on ``cluster``'s
    nodes; ``log`` names the file under runs/.../nodes/<node>/."""

    def spawn(node: str, argv: Sequence[str], env: Mapping[str, str], log: str | None = None) -> Any:
        remote = cluster.remote(node)
        if clock is None:
            return remote.spawn(list(argv), env=env, log=log or default_log)
        return spawn_skewable(node, remote, list(argv), env, log or default_log, clock)

    return spawn


def ssh_spawner(cluster: Any, default_log: str = "server.log"):
    """``spawn(node, argv, env, log=None) -> process handle`` for a target's processes on the hosts of an
    SSHCluster: each detached on its host, its output in ``log`` in the node's work directory there,
    downloaded into runs/.../nodes/<node>/ when the cluster goes down."""

    def spawn(node: str, argv: Sequence[str], env: Mapping[str, str], log: str | None = None) -> Any:
        return cluster.remote(node).spawn(list(argv), env=env, log=log or default_log)

    return spawn


def spawn_skewable(node: str, remote: Any, argv: list[str], env: Mapping[str, str], log: str, clock: Any) -> Any:
    from nemesis.clockpatch import ClockPatchError, spawn_skewed

    cgroup = None
    if remote.cgroup_dir is not None:
        cgroup = Cgroup(remote.cgroup_dir / f"skewed-{next(_names)}")
        cgroup.create()
    procs = str(cgroup.path / "cgroup.procs") if cgroup is not None else None

    def join_cgroup() -> None:  # in the child, before it enters the namespace that hides /sys/fs/cgroup
        if procs is not None:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))

    log_path = remote.log_dir / log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as out:
            skewed = spawn_skewed(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                  process_group=0, preexec_fn=join_cgroup, netns=remote.netns,
                                  offset_ns=clock.offset_ns(node))
    except ClockPatchError as e:
        raise ConfigError(f"clock nemesis: cannot skew {argv[0]} on {node}: {e}") from None
    clock.register(node, skewed)
    return LocalProcess(node, skewed.popen, cgroup, log_path)
