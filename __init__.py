"""splitbrain: a Jepsen-style fault-injection test harness, as a library with a CLI on top.

Everything a user needs to test their own system is importable from here (docs/api.md):

    from splitbrain import TargetSpec, OneProcessPerNode, Workload, Test, LocalNodes, Partition, Kill, run

The repository root is this package: its folders are its subpackages (``splitbrain.histories``,
``splitbrain.checkers``, ``splitbrain.control``, ``splitbrain.nemesis``, ``splitbrain.targets``,
``splitbrain.harness``). Only the names below are the public API; everything else may change. They are
loaded on first use, so ``import splitbrain`` costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_PUBLIC: dict[str, str] = {
    # what a user implements for their system, and the helpers for it
    "Target": "splitbrain.control.target",
    "Killable": "splitbrain.control.target",
    "Pausable": "splitbrain.control.target",
    "HasPrimaries": "splitbrain.control.target",
    "HasLogs": "splitbrain.control.target",
    "WaitsReady": "splitbrain.control.target",
    "HasDataFiles": "splitbrain.control.target",
    "DataFiles": "splitbrain.control.target",
    "Client": "splitbrain.control.target",
    "ClientOpener": "splitbrain.control.target",
    "TargetSpec": "splitbrain.control.target",
    "TargetEnv": "splitbrain.control.target",
    "OneProcessPerNode": "splitbrain.control.target",
    "Spawner": "splitbrain.control.spawn",
    "ProcessHandle": "splitbrain.control.remote",
    "NodeFiles": "splitbrain.control.remote",
    "Remote": "splitbrain.control.remote",
    "ExecResult": "splitbrain.control.remote",
    "run_checked": "splitbrain.control.remote",
    # where the nodes are
    "Nodes": "splitbrain.control.clusters",
    "LocalNodes": "splitbrain.control.clusters",
    "DockerNodes": "splitbrain.control.clusters",
    "SSHNodes": "splitbrain.control.clusters",
    # errors
    "ConfigError": "splitbrain.control.errors",
    "RemoteError": "splitbrain.control.errors",
    "HostError": "splitbrain.control.errors",
    "HistoryFormatError": "splitbrain.histories.errors",
    "PluginError": "splitbrain.harness.plugins",
    # histories
    "Op": "splitbrain.histories.op",
    "fenced_off": "splitbrain.histories.op",
    "is_fenced_off": "splitbrain.histories.op",
    "History": "splitbrain.histories.history",
    "Operation": "splitbrain.histories.history",
    "load_history": "splitbrain.histories.formats",
    "save_history": "splitbrain.histories.formats",
    "fault_windows": "splitbrain.histories.faults",
    # checkers and models
    "Result": "splitbrain.checkers.result",
    "CheckFn": "splitbrain.checkers.result",
    "compose": "splitbrain.checkers.result",
    "check_all": "splitbrain.checkers.result",
    "check_linearizable": "splitbrain.checkers.linearizable",
    "cas_register": "splitbrain.checkers.models",
    "kv": "splitbrain.checkers.models",
    "mutex": "splitbrain.checkers.models",
    "model_named": "splitbrain.checkers.models",
    "check_lock": "splitbrain.checkers.lock",
    "check_set": "splitbrain.checkers.basic",
    "check_counter": "splitbrain.checkers.basic",
    "check_unique_ids": "splitbrain.checkers.basic",
    "check_stats": "splitbrain.checkers.basic",
    "check_availability": "splitbrain.checkers.availability",
    "check_list_append": "splitbrain.checkers.elle",
    "check_rw_register": "splitbrain.checkers.elle",
    # faults
    "FaultKind": "splitbrain.nemesis.kinds",
    "Partition": "splitbrain.nemesis.kinds",
    "Kill": "splitbrain.nemesis.kinds",
    "Pause": "splitbrain.nemesis.kinds",
    "Clock": "splitbrain.nemesis.kinds",
    "Packet": "splitbrain.nemesis.kinds",
    "Nemesis": "splitbrain.nemesis.base",
    "NemesisContext": "splitbrain.nemesis.base",
    "completed": "splitbrain.nemesis.base",
    "Step": "splitbrain.nemesis.schedule",
    # generators and workloads
    "Generator": "splitbrain.harness.generator",
    "Context": "splitbrain.harness.generator",
    "PENDING": "splitbrain.harness.generator",
    "Once": "splitbrain.harness.generator",
    "Fn": "splitbrain.harness.generator",
    "Seq": "splitbrain.harness.generator",
    "Limit": "splitbrain.harness.generator",
    "TimeLimit": "splitbrain.harness.generator",
    "Stagger": "splitbrain.harness.generator",
    "Mix": "splitbrain.harness.generator",
    "Sleep": "splitbrain.harness.generator",
    "Until": "splitbrain.harness.generator",
    "phases": "splitbrain.harness.generator",
    "Workload": "splitbrain.harness.workloads",
    "WorkloadSpec": "splitbrain.harness.workloads",
    "RotatingKeys": "splitbrain.harness.workloads",
    "LockOps": "splitbrain.harness.workloads",
    "FreshValues": "splitbrain.harness.workloads",
    "TxnOps": "splitbrain.harness.transactions",
    # tests and runs
    "Test": "splitbrain.harness.test",
    "TestOptions": "splitbrain.harness.test",
    "run": "splitbrain.harness.run",
    "RunOutcome": "splitbrain.harness.run",
    "analyze": "splitbrain.harness.run",
    "repro_test": "splitbrain.harness.run",
    "open_run_dir": "splitbrain.harness.store",
    "load_target": "splitbrain.harness.plugins",
    "load_workload": "splitbrain.harness.plugins",
    # test plans (docs/plans.md)
    "Plan": "splitbrain.harness.plan.model",
    "PlanTest": "splitbrain.harness.plan.model",
    "PlanResult": "splitbrain.harness.plan.results",
    "load_plan": "splitbrain.harness.plan.toml_plan",
    "run_plan": "splitbrain.harness.plan.runner",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'splitbrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
