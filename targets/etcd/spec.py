"""How `splitbrain run --target etcd` builds etcd on a run's nodes and opens its clients.

Option ``read`` = ``linearizable`` (default: reads go through Raft's ReadIndex) or ``serializable`` (a
member answers reads from its own state: fast, and stale on a member cut off from the quorum -- the
known-unsafe configuration a partition exposes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.control.target import TargetEnv, TargetSpec
from splitbrain.targets.etcd.target import READ_MODES, EtcdTarget


def read_mode(options: Mapping[str, Any]) -> str:
    return str(options.get("read", "linearizable"))


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    if read_mode(options) not in READ_MODES:
        raise ConfigError(f"target etcd: --read {read_mode(options)!r} is not a read mode; "
                          f"expected one of {', '.join(READ_MODES)}")


def _build(env: TargetEnv) -> EtcdTarget:
    return EtcdTarget(env.addresses, env.data_root, env.spawn, read=read_mode(env.options),
                      cluster_token=f"splitbrain-{env.test.seed}", files=env.files)


def _register_client(test: Any, target: EtcdTarget, node: str) -> Any:
    from splitbrain.targets.etcd.client import RegisterClient

    return RegisterClient(target.url(node), test.client_timeout_s, serializable=target.read == "serializable")


def _lock_client(test: Any, target: EtcdTarget, node: str) -> Any:
    from splitbrain.targets.etcd.client import LockClient

    return LockClient(target.url(node), test.client_timeout_s)


def _txn_client(test: Any, target: EtcdTarget, node: str) -> Any:
    from splitbrain.targets.etcd.txn import TxnClient

    return TxnClient(target.url(node), test.client_timeout_s, serializable=target.read == "serializable")


def spec() -> TargetSpec:
    return TargetSpec("etcd", _build, {"register": _register_client, "lock": _lock_client,
                                       "list-append": _txn_client, "rw-register": _txn_client},
                      options={"read": "linearizable (default) | serializable"}, validate=_validate,
                      target_type=EtcdTarget, description="etcd 3.4 (/usr/bin/etcd), one member per node")
