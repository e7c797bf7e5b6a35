"""How `splitbrain run --target raft` builds the internal Raft store and opens its clients.

Option ``bugs``: deliberate bugs of the store to switch on, comma-separated (`--bug NAME` adds one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.control.target import TargetEnv, TargetSpec
from splitbrain.targets.raft.core import BUGS
from splitbrain.targets.raft.target import RaftTarget


def bugs_of(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``bugs`` option as names (a comma-separated string, or a list from the Python API)."""
    raw = options.get("bugs", ())
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    unknown = sorted(set(bugs_of(options)) - set(BUGS))
    if unknown:
        raise ConfigError(f"unknown --bug {', '.join(unknown)}; expected one of {', '.join(sorted(BUGS))}")


def _build(env: TargetEnv) -> RaftTarget:
    return RaftTarget(env.addresses, env.data_root, env.spawn, bugs=bugs_of(env.options), seed=env.test.seed,
                      files=env.files)


def _register_client(test: Any, target: RaftTarget, node: str) -> Any:
    from splitbrain.targets.raft.workloads import RegisterClient

    return RegisterClient(target.url(node), test.client_timeout_s)


def _lock_client(test: Any, target: RaftTarget, node: str) -> Any:
    from splitbrain.targets.raft.workloads import LockClient

    return LockClient(target.url(node), test.client_timeout_s)


def _txn_client(test: Any, target: RaftTarget, node: str) -> Any:
    from splitbrain.targets.raft.workloads import TxnClient

    return TxnClient(target.url(node), test.client_timeout_s)


def spec() -> TargetSpec:
    return TargetSpec(
        "raft", _build, {"register": _register_client, "lock": _lock_client, "list-append": _txn_client,
                         "rw-register": _txn_client},
        options={"bugs": f"deliberate bugs of the store, comma-separated: {', '.join(sorted(BUGS))} "
                         "(default none; --bug NAME adds one)"},
        validate=_validate, min_nodes=3, target_type=RaftTarget,
        description="splitbrain's own Raft key-value and lock store (one server per node)")
