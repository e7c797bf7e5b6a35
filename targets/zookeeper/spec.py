"""How `splitbrain run --target zookeeper` builds the ensemble and its clients.

Options: ``read`` = ``sync`` (the default: sync before each read, linearizable) or ``local`` (read whatever
the connected server has applied: sequentially consistent only); ``tick_ms`` = ZooKeeper's tickTime in
milliseconds (default 200; session and failure-detection times scale with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.control.target import TargetEnv, TargetSpec
from splitbrain.targets.zookeeper.target import ZooKeeperTarget

READ_MODES = ("sync", "local")


def read_mode(options: Mapping[str, Any]) -> str:
    mode = str(options.get("read", "sync"))
    if mode not in READ_MODES:
        raise ConfigError(f"target zookeeper: --read {mode!r} is not a read mode; expected sync or local")
    return mode


def tick_ms(options: Mapping[str, Any]) -> int:
    raw = options.get("tick_ms", 200)
    try:
        tick = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"target zookeeper: tick_ms must be a whole number of milliseconds, got {raw!r}") from None
    if not 50 <= tick <= 2000:
        raise ConfigError(f"target zookeeper: tick_ms must be between 50 and 2000, got {tick}")
    return tick


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    read_mode(options)
    tick_ms(options)


def _build(env: TargetEnv) -> ZooKeeperTarget:
    return ZooKeeperTarget(env.addresses, env.data_root, env.spawn, tick_ms=tick_ms(env.options),
                           read=read_mode(env.options), files=env.files)


def _register_client(test: Any, target: ZooKeeperTarget, node: str) -> Any:
    from splitbrain.targets.zookeeper.client import RegisterClient

    return RegisterClient(target.hosts(node), test.client_timeout_s, read=target.read)


def _lock_client(test: Any, target: ZooKeeperTarget, node: str) -> Any:
    from splitbrain.targets.zookeeper.client import LockClient

    return LockClient(target.hosts(node), test.client_timeout_s)


def spec() -> TargetSpec:
    return TargetSpec("zookeeper", _build, {"register": _register_client, "lock": _lock_client},
                      options={"read": "sync (default) | local", "tick_ms": "ZooKeeper's tickTime in ms (default 200)"},
                      validate=_validate, min_nodes=3, target_type=ZooKeeperTarget,
                      description="ZooKeeper 3.8 (QuorumPeerMain JVM), one server per node")
