"""How `splitbrain run --target lb` builds nginx or HAProxy in front of replicated backends.

Workloads: set and unique-ids (targets/lb/client.py), register (the Raft store's own client, through the
balancer to backends that pass its kv API on). Options: ``lb`` = nginx (default) | haproxy; ``retry`` =
safe (default) | unsafe (the balancer re-sends requests a backend may have applied; targets/lb/configs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitbrain.control.target import TargetEnv, TargetSpec
from splitbrain.targets.lb.target import LbTarget, lb_options


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    lb_options(options)


def _build(env: TargetEnv) -> LbTarget:
    balancer, retry = lb_options(env.options)
    return LbTarget(env.addresses, env.data_root, env.spawn, balancer=balancer, retry=retry, seed=env.test.seed,
                    files=env.files)


def _register_client(test: Any, target: LbTarget, node: str) -> Any:
    from splitbrain.targets.raft.workloads import RegisterClient  # the backends pass the store's kv API on

    return RegisterClient(target.url(), test.client_timeout_s)


def _lb_client(workload: str):
    def open_client(test: Any, target: LbTarget, node: str) -> Any:
        from splitbrain.targets.lb.client import LbClient

        return LbClient(target.url(), test.client_timeout_s, workload)

    return open_client


def spec() -> TargetSpec:
    return TargetSpec("lb", _build, {"set": _lb_client("set"), "unique-ids": _lb_client("unique-ids"),
                                     "register": _register_client},
                      options={"lb": "nginx (default) | haproxy", "retry": "safe (default) | unsafe"},
                      validate=_validate, min_nodes=4, target_type=LbTarget,
                      description="nginx or HAProxy (node1) in front of Raft-replicated HTTP backends")
