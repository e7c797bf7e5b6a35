"""Before a plan runs anything: every name of every cell resolved (targets, workloads, fault kinds,
target options, bugs) and every run's test validated as `splitbrain run` would validate it, so a wrong
plan fails in one line naming its key, and nothing is started."""

from __future__ import annotations

import re
from collections.abc import Sequence

from splitbrain.control.errors import ConfigError
from splitbrain.harness.plan.model import SETTINGS, Cell, Plan, PlanError, located

# `splitbrain run`'s option in a validation message -> the plan key that sets it
_KEY_OF_OPTION = {f"--{option.replace('_', '-')}": key for key, option in SETTINGS.items()}
_KEY_OF_OPTION.update({"--recovery": "recovery", "--client-timeout": "client_timeout", "--seed": "seeds",
                       "--nemesis": "nemesis", "--name": "name", "--bug": "bugs", "--target-opt": "options"})


def _key_named_in(message: str) -> tuple[str, ...]:
    if "has no workload" in message:
        return ("workloads",)
    found = re.search(r"--[a-z][a-z-]*", message)
    return (_KEY_OF_OPTION[found.group(0)],) if found and found.group(0) in _KEY_OF_OPTION else ()


def check_cell(cell: Cell, store: str) -> None:
    """PlanError naming the key of ``cell`` that cannot be run."""
    from splitbrain.harness.plugins import load_fault_kind, load_target, load_workload

    def wrong(key: tuple[str, ...], e: ConfigError) -> PlanError:
        return PlanError(str(e), cell.test_index, key, cell.test)

    try:
        spec = load_target(cell.target)
    except ConfigError as e:
        raise wrong(("targets",), e) from None
    try:
        load_workload(cell.workload)
    except ConfigError as e:
        raise wrong(("workloads",), e) from None
    for kind in cell.nemesis:
        try:
            load_fault_kind(kind)
        except ConfigError as e:
            raise wrong(("nemesis",), e) from None
    if cell.settings.get("bugs") and "bugs" not in spec.options:
        raise PlanError(f"--bug goes with targets that have deliberate bugs (raft); target {cell.target} has none",
                        cell.test_index, ("bugs",), cell.test)
    options = cell.test_options(cell.seeds[0], store)
    try:
        spec.check_options(options.target_options(), options.nodes)
    except ConfigError as e:
        key = ("nodes",) if "nodes" in str(e) and "option" not in str(e) else ("options",)
        raise wrong(key, e) from None
    try:
        options.build().validate()
    except ConfigError as e:
        raise wrong(_key_named_in(str(e)), e) from None


def preflight(plan: Plan, cells: Sequence[Cell], parallel: int) -> None:
    """ConfigError (with the file and line of a TOML plan's key) for the first cell that cannot run."""
    try:
        for cell in cells:
            check_cell(cell, plan.store)
            if parallel > 1 and cell.settings.get("remote") == "ssh":
                raise PlanError(f"--parallel {parallel}: tests on SSH hosts would share the hosts; run this "
                                "plan with --parallel 1", cell.test_index, ("remote",), cell.test)
    except PlanError as e:
        raise located(plan, e) from None
