"""Exact shrinking of a failing simulation: the smallest schedule, op script and cluster that still fail.

    Case.of(result, nodes, bug) -> Case            # a failing run as a replayable case (schedule + script)
    shrink_case(case, max_runs=...) -> Shrunk      # delta debugging until no single removal still fails

A run's schedule (the steps its nemesis took) and its op script (every client's ops, workload.py) replay
it exactly; a candidate is the case with steps, ops, clients or nodes removed, or steps made shorter,
re-run from the same seed. It counts as failing when a checker that failed on the original fails again
(the signature), with the linearizability search bounded by its size, not a clock -- so every candidate's
verdict, and so the whole search, is the same on any machine: the same seed shrinks to the same case.

Passes, repeated until a round changes nothing: schedule steps (ddmin), whole clients, single ops
(ddmin), lock clients' op counts, step lengths (halving), nodes (5 -> 3 -> 1, steps naming a missing node
dropped). ``max_runs`` bounds the search by the number of candidates run, never by time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from splitbrain.checkers.ddmin import Budget, ddmin
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import Step
from splitbrain.targets.raft.sim.simulate import SimResult, reproduction, simulate
from splitbrain.targets.raft.sim.workload import OpScript, ScriptOp, Workload

MAX_CONFIGS = 500_000   # linearizability search bound per candidate (a size, so verdicts never vary)
MIN_STEP_MS = 10
DEFAULT_MAX_RUNS = 600


@dataclass(frozen=True)
class Case:
    seed: int
    nodes: int
    bug: str | None
    workload: Workload
    schedule: tuple[Step, ...]
    script: OpScript

    @classmethod
    def of(cls, result: SimResult, nodes: int, bug: str | None) -> Case:
        return cls(result.seed, nodes, bug, result.workload, tuple(result.schedule), result.script())

    def run(self) -> SimResult:
        return simulate(self.seed, nodes=self.nodes, ops=10**9, bug=self.bug, workload=self.workload,
                        schedule=list(self.schedule), script=self.script)

    @property
    def fault_ms(self) -> int:
        return sum(s.run_ms for s in self.schedule)

    def describe(self) -> str:
        return (f"{len(self.schedule)} steps / {self.fault_ms} ms / {self.script.ops} ops / "
                f"{self.script.clients} clients / {self.nodes} nodes")

    def reproduction(self) -> str:
        """Python that replays this case exactly (the schedule, the script and the workload)."""
        code = reproduction(self.seed, self.schedule, nodes=self.nodes, bug=self.bug, workload=self.workload)
        return code.replace("from splitbrain.targets.raft.sim.workload import Workload\n",
                            "from splitbrain.targets.raft.sim.workload import OpScript, Workload\n"
                            ).replace("schedule=[", f"script={self.script!r}, schedule=[", 1) + (
            "from splitbrain.targets.raft.sim.check import check_sim\n"
            "print(check_sim(result).explanation or 'valid')\n")


def failing(result: SimResult) -> frozenset[str]:
    """The checkers that say invalid (unknown is not a failure: a candidate must be proven to fail)."""
    verdict = check_sim(result, time_limit=None, max_configs=MAX_CONFIGS)
    return frozenset(name for name, part in verdict.details.items()
                     if isinstance(part, dict) and part.get("valid") is False)


@dataclass
class Shrunk:
    original: Case
    case: Case
    result: SimResult
    signature: frozenset[str]
    runs: int
    minimal: bool          # False: the run budget ran out before a round changed nothing

    def summary(self) -> str:
        done = "1-minimal" if self.minimal else "budget spent, not yet minimal"
        return (f"shrunk from {self.original.describe()} to {self.case.describe()} "
                f"in {self.runs} runs ({done}; still fails {', '.join(sorted(self.signature))})")


def shrink_case(case: Case, *, max_runs: int = DEFAULT_MAX_RUNS,
                on_progress: Callable[[str, Case], None] | None = None) -> Shrunk:
    """Shrink a failing ``case``; ValueError when it does not fail."""
    signature = failing(case.run())
    if not signature:
        raise ValueError(f"seed {case.seed} does not fail: nothing to shrink")
    budget = Budget(max_runs)
    seen: dict[str, bool] = {}

    def fails(c: Case) -> bool:
        key = repr(c)
        if key not in seen:
            seen[key] = bool(failing(c.run()) & signature)
        return seen[key]

    best = case
    changed = True
    while changed and budget.left > 0:
        changed = False
        for name, shrink_pass in PASSES:
            smaller = shrink_pass(best, fails, budget)
            if smaller != best:
                best, changed = smaller, True
                if on_progress is not None:
                    on_progress(name, best)
    minimal = not changed
    return Shrunk(case, best, best.run(), signature, budget.used, minimal)


Fails = Callable[[Case], bool]


def _steps(case: Case, fails: Fails, budget: Budget) -> Case:
    steps = ddmin(case.schedule, lambda s: fails(replace(case, schedule=tuple(s))), budget)
    return replace(case, schedule=tuple(steps))


def _with_kv(case: Case, kv: dict[int, tuple[ScriptOp, ...]]) -> Case:
    return replace(case, script=OpScript({c: ops for c, ops in kv.items() if ops}, case.script.lock))


def _clients(case: Case, fails: Fails, budget: Budget) -> Case:
    kv_clients = sorted(c for c, ops in case.script.kv.items() if ops)
    lock_clients = sorted(c for c, n in case.script.lock.items() if n)
    items = [("kv", c) for c in kv_clients] + [("lock", c) for c in lock_clients]

    def keep(chosen: list[tuple[str, int]]) -> Case:
        kv = {c: case.script.kv[c] for k, c in chosen if k == "kv"}
        lock = {c: case.script.lock[c] for k, c in chosen if k == "lock"}
        return replace(case, script=OpScript(kv, lock))

    return keep(ddmin(items, lambda chosen: fails(keep(chosen)), budget))


def _ops(case: Case, fails: Fails, budget: Budget) -> Case:
    items = [(c, i) for c, ops in case.script.kv.items() for i in range(len(ops))]

    def keep(chosen: list[tuple[int, int]]) -> Case:
        kv: dict[int, list[ScriptOp]] = {}
        for c, i in chosen:
            kv.setdefault(c, []).append(case.script.kv[c][i])
        return _with_kv(case, {c: tuple(ops) for c, ops in kv.items()})

    return keep(ddmin(items, lambda chosen: fails(keep(chosen)), budget))


def _lock_counts(case: Case, fails: Fails, budget: Budget) -> Case:
    """A lock client's ops follow its outcomes, so only its count can shrink: halve it while it fails."""
    for c in sorted(case.script.lock):
        while case.script.lock[c] > 1 and budget.take():
            lock = dict(case.script.lock)
            lock[c] = lock[c] // 2
            candidate = replace(case, script=OpScript(case.script.kv, lock))
            if not fails(candidate):
                break
            case = candidate
    return case


def _step_lengths(case: Case, fails: Fails, budget: Budget) -> Case:
    for i in range(len(case.schedule)):
        while case.schedule[i].run_ms > MIN_STEP_MS and budget.take():
            steps = list(case.schedule)
            steps[i] = replace(steps[i], run_ms=max(MIN_STEP_MS, steps[i].run_ms // 2))
            candidate = replace(case, schedule=tuple(steps))
            if not fails(candidate):
                break
            case = candidate
    return case


def _nodes(case: Case, fails: Fails, budget: Budget) -> Case:
    """Odd cluster sizes below the case's (a majority needs an odd size to mean anything)."""
    for n in range(case.nodes - 2, 0, -2):
        if not budget.take():
            break
        candidate = replace(case, nodes=n, schedule=tuple(s for s in (_fit(step, n) for step in case.schedule)
                                                          if s is not None))
        if fails(candidate):
            case = candidate
    return case


def _fit(step: Step, nodes: int) -> Step | None:
    """``step`` on a cluster of n1..n{nodes}; None when it names a node that is gone."""
    names = {f"n{i + 1}" for i in range(nodes)}

    def ok(arg: Any) -> bool:
        return not (isinstance(arg, str) and arg.startswith("n") and arg[1:].isdigit() and arg not in names)

    if step.action == "partition":
        groups = tuple(tuple(n for n in g if n in names) for g in step.args)
        groups = tuple(g for g in groups if g)
        return replace(step, args=groups) if len(groups) > 1 else None
    return step if all(ok(a) for a in step.args) else None


PASSES: list[tuple[str, Callable[[Case, Fails, Budget], Case]]] = [
    ("steps", _steps), ("clients", _clients), ("ops", _ops), ("lock ops", _lock_counts),
    ("step lengths", _step_lengths), ("nodes", _nodes),
]
