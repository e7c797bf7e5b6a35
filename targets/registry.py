"""Systems under test by name: how to build each on a run's nodes, and its clients per workload.

A TargetSpec is all the run loop knows about a system: ``build`` makes the target object (setup/teardown
per node, wait_ready, and optionally kill/start, pause/resume, primaries: targets/base.py), ``client``
opens one client for a worker. A target puts its config files and data directories on the nodes
through ``files`` (NodeFiles, harness/remote.py), never straight onto this machine's disk: on SSH hosts
the two differ. Target-specific options arrive in ``test.target_opts`` (from
``--read MODE`` and ``--target-opt KEY=VALUE``); ``validate`` rejects the ones a target does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError

# spawn(node, argv, env, log_name) -> process handle (kill/pause/resume/alive/wait); see harness/nodes.py
Spawner = Callable[..., Any]


@dataclass(frozen=True)
class TargetSpec:
    name: str
    workloads: tuple[str, ...]
    options: tuple[str, ...]                       # the target_opts keys it understands
    min_nodes: int
    build: Callable[[Any, Mapping[str, str], Spawner, Path, Any], Any]  # (test, addresses, spawn, data_root, files)
    client: Callable[[Any, Any, str], Any]                          # (test, target, node) -> Client

    def validate(self, test: Any) -> None:
        if test.workload not in self.workloads:
            raise ConfigError(f"target {self.name} has no workload {test.workload!r}; "
                              f"expected one of {', '.join(self.workloads)}")
        unknown = sorted(set(test.target_opts) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ConfigError(f"target {self.name} has no option {', '.join(unknown)} (its options: {known})")
        if test.nodes < self.min_nodes:
            raise ConfigError(f"target {self.name} needs at least {self.min_nodes} nodes, got {test.nodes}")


def _raft() -> TargetSpec:
    def build(test: Any, addresses: Mapping[str, str], spawn: Spawner, data_root: Path, files: Any) -> Any:
        from splitbrain.targets.raft.target import RaftTarget

        return RaftTarget(addresses, data_root, spawn, bugs=test.bugs, seed=test.seed, files=files)

    def client(test: Any, target: Any, node: str) -> Any:
        from splitbrain.targets.raft.workloads import LockClient, RegisterClient

        cls = RegisterClient if test.workload == "register" else LockClient
        return cls(target.url(node), test.client_timeout_s)

    return TargetSpec("raft", ("register", "lock"), (), 3, build, client)


# name -> its spec, or the module whose ``spec()`` builds it (imported only when that target is used, so a
# target's dependencies matter only to runs of that target).
_SPECS: dict[str, Callable[[], TargetSpec] | str] = {
    "raft": _raft,
    "etcd": "splitbrain.targets.etcd.spec",
    "zookeeper": "splitbrain.targets.zookeeper.spec",
    "lb": "splitbrain.targets.lb.spec",
}


def target_names() -> tuple[str, ...]:
    return tuple(sorted(_SPECS))


def target_spec(name: str) -> TargetSpec:
    entry = _SPECS.get(name)
    if entry is None:
        raise ConfigError(f"unknown --target {name!r}; expected one of {', '.join(sorted(_SPECS))}")
    if isinstance(entry, str):
        import importlib

        try:
            module = importlib.import_module(entry)
        except ModuleNotFoundError as e:
            raise ConfigError(f"target {name} is not available: {e}") from None
        return module.spec()
    return entry()
