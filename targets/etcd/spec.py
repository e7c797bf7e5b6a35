"""How `splitbrain run --target etcd` builds etcd on a run's nodes and opens its clients.

Option (``test.target_opts``): ``read`` = ``linearizable`` (default: reads go through Raft's ReadIndex)
or ``serializable`` (a member answers reads from its own state: fast, and stale on a member cut off from
the quorum -- the known-unsafe configuration a partition exposes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.targets.registry import Spawner, TargetSpec

READ_MODES = ("linearizable", "serializable")


def read_mode(test: Any) -> str:
    return str(test.target_opts.get("read", "linearizable"))


@dataclass(frozen=True)
class EtcdSpec(TargetSpec):
    def validate(self, test: Any) -> None:
        super().validate(test)
        if read_mode(test) not in READ_MODES:
            raise ConfigError(f"target etcd: --read {read_mode(test)!r} is not a read mode; "
                              f"expected one of {', '.join(READ_MODES)}")


def _build(test: Any, addresses: Mapping[str, str], spawn: Spawner, data_root: Path, files: Any) -> Any:
    from splitbrain.targets.etcd.target import EtcdTarget

    return EtcdTarget(addresses, data_root, spawn, read=read_mode(test), cluster_token=f"splitbrain-{test.seed}",
                      files=files)


def _client(test: Any, target: Any, node: str) -> Any:
    from splitbrain.targets.etcd.client import LockClient, RegisterClient

    if test.workload == "register":
        return RegisterClient(target.url(node), test.client_timeout_s, serializable=target.read == "serializable")
    return LockClient(target.url(node), test.client_timeout_s)


def spec() -> TargetSpec:
    return EtcdSpec("etcd", ("register", "lock"), ("read",), 1, _build, _client)
