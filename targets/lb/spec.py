"""The lb target for ``splitbrain run --target lb``: nginx or HAProxy in front of replicated backends.

Workloads: set and unique-ids (targets/lb/client.py), register (the Raft store's own client, through the
balancer to backends that pass its kv API on). Options (``--target-opt KEY=VALUE``): ``lb`` = nginx (default) | haproxy; ``retry`` = safe (default) |
unsafe (the balancer re-sends requests a backend may have applied; see targets/lb/configs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitbrain.targets.registry import Spawner, TargetSpec


@dataclass(frozen=True)
class LbSpec(TargetSpec):
    def validate(self, test: Any) -> None:
        """The option values too, before any node is up."""
        from splitbrain.targets.lb.target import lb_options

        super().validate(test)
        lb_options(test.target_opts)


def spec() -> TargetSpec:
    def build(test: Any, addresses: Mapping[str, str], spawn: Spawner, data_root: Path, files: Any) -> Any:
        from splitbrain.targets.lb.target import LbTarget, lb_options

        balancer, retry = lb_options(test.target_opts)
        return LbTarget(addresses, data_root, spawn, balancer=balancer, retry=retry, seed=test.seed,
                        files=files)

    def client(test: Any, target: Any, node: str) -> Any:
        if test.workload == "register":  # the backends pass the Raft store's own kv API through
            from splitbrain.targets.raft.workloads import RegisterClient

            return RegisterClient(target.url(), test.client_timeout_s)
        from splitbrain.targets.lb.client import LbClient

        return LbClient(target.url(), test.client_timeout_s, test.workload)

    return LbSpec("lb", ("set", "unique-ids", "register"), ("lb", "retry"), 4, build, client)
