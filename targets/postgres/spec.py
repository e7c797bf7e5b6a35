"""How `splitbrain run --target postgres` builds PostgreSQL on a run's nodes and opens its clients.

A built-in target written only against the public API (``from splitbrain import ...``), as a plugin is:
it ships with splitbrain because the transactional workloads need a real database whose isolation
levels are known (Adya, Hermitage) to show that each level's permitted anomalies are found and its
forbidden ones are not.

Options: ``isolation`` = serializable (default) | repeatable-read | read-committed (PostgreSQL's own
default); ``reads`` = primary (default) | replicas (read-only txns of a replica's clients go to that
asynchronous replica). One node: a single primary; more: node1 the primary, the others streaming replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitbrain import TargetEnv, TargetSpec
from splitbrain.targets.postgres.target import PostgresTarget, options_of


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    options_of(options)


def _build(env: TargetEnv) -> PostgresTarget:
    return PostgresTarget(env, *options_of(env.options))


def _txn_client(workload: str) -> Any:
    def opener(test: Any, target: PostgresTarget, node: str) -> Any:
        from splitbrain.targets.postgres.client import TxnClient

        return TxnClient(target, node, workload, test.client_timeout_s)

    return opener


def spec() -> TargetSpec:
    return TargetSpec(
        "postgres", _build, {"list-append": _txn_client("list-append"), "rw-register": _txn_client("rw-register")},
        options={"isolation": "serializable (default) | repeatable-read | read-committed",
                 "reads": "primary (default) | replicas (read-only txns of a replica's clients go to that "
                          "asynchronous replica: stale)"},
        validate=_validate, min_nodes=1, target_type=PostgresTarget,
        description="PostgreSQL 15 (/usr/lib/postgresql/15/bin), node1 the primary, the others async replicas")
