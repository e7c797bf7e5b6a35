"""How `splitbrain run --target zookeeper` builds the ensemble and its clients.

Options (``test.target_opts``): ``read`` = ``sync`` (the default: sync before each read, linearizable)
or ``local`` (read whatever the connected server has applied: sequentially consistent only);
``tick_ms`` = ZooKeeper's tickTime in milliseconds (default 200; session and failure-detection times
scale with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.targets.registry import Spawner, TargetSpec

READ_MODES = ("sync", "local")


def read_mode(test: Any) -> str:
    mode = str(test.target_opts.get("read", "sync"))
    if mode not in READ_MODES:
        raise ConfigError(f"target zookeeper: --read {mode!r} is not a read mode; expected sync or local")
    return mode


def tick_ms(test: Any) -> int:
    raw = test.target_opts.get("tick_ms", 200)
    try:
        tick = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"target zookeeper: tick_ms must be a whole number of milliseconds, got {raw!r}") from None
    if not 50 <= tick <= 2000:
        raise ConfigError(f"target zookeeper: tick_ms must be between 50 and 2000, got {tick}")
    return tick


def build(test: Any, addresses: Mapping[str, str], spawn: Spawner, data_root: Path, files: Any) -> Any:
    from splitbrain.targets.zookeeper.target import ZooKeeperTarget

    return ZooKeeperTarget(addresses, data_root, spawn, tick_ms=tick_ms(test), read=read_mode(test),
                           files=files)


def client(test: Any, target: Any, node: str) -> Any:
    from splitbrain.targets.zookeeper.client import LockClient, RegisterClient

    if test.workload == "register":
        return RegisterClient(target.hosts(node), test.client_timeout_s, read=target.read)
    return LockClient(target.hosts(node), test.client_timeout_s)


class ZooKeeperSpec(TargetSpec):
    """Also rejects a bad ``read`` or ``tick_ms`` before anything starts."""

    def validate(self, test: Any) -> None:
        super().validate(test)
        read_mode(test)
        tick_ms(test)


def spec() -> TargetSpec:
    return ZooKeeperSpec("zookeeper", ("register", "lock"), ("read", "tick_ms"), 3, build, client)
