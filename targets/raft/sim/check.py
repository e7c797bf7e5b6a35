"""The verdict of a simulation: Raft invariants, linearizability of the kv ops, lock safety."""

from __future__ import annotations

from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import kv
from splitbrain.checkers.result import Result, compose
from splitbrain.targets.raft.sim.simulate import SimResult


def invariants_result(result: SimResult) -> Result:
    if not result.violations:
        return Result(True, {"checked": ["election safety", "log matching", "committed entries kept",
                                         "state machine safety"]})
    return Result(False, {"violations": [str(v) for v in result.violations]},
                  "\n".join(str(v) for v in result.violations[:10]))


def check_sim(result: SimResult, *, time_limit: float | None = 60.0, max_configs: int | None = None) -> Result:
    """All checks of one run, composed (false > unknown > true). ``max_configs`` bounds the linearizability
    search by its size instead of the clock: with ``time_limit=None`` the verdict is the same on any machine."""
    parts = {"raft-invariants": invariants_result(result)}
    kv_history = result.kv_history()
    if kv_history.operations():
        parts["linearizable-kv"] = check_linearizable(kv_history, kv(), time_limit=time_limit,
                                                        **({} if max_configs is None else {"max_configs": max_configs}))
    lock_history = result.lock_history()
    if lock_history.operations():
        from splitbrain.checkers.lock import check_lock  # written alongside; only needed for lock workloads

        parts["lock"] = check_lock(lock_history)
    return compose(parts)
