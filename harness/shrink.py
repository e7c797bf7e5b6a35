"""Shrinking a real failing run: a smaller schedule and smaller limits that still fail, within a budget.

    search(start, try_candidate, signature, tries=N, budget_s=...) -> Found     # pure: no run loop here
    shrink_run(run_dir, tries=N, budget_s=...) -> Found                        # the adapter over run.py

Real clusters are not deterministic, so a candidate (a schedule plus limits: time limit, concurrency,
nodes) is tried up to ``tries`` times and counts as failing when any try fails with the original's
signature (checker + anomaly kind: what ``try_candidate`` returns). Passes: whole faults (a start step
with the step that ends it, ddmin), then the time limit, the concurrency, the node count (down to the
target's minimum) and the workload's key count, each halved while they still fail. The budget bounds the
whole search by wall time (real runs cost seconds each; determinism is not on offer here).

``try_candidate(candidate) -> Trial`` is the only contact with the run loop, so the lead can re-point
the adapter when the run loop changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from splitbrain.checkers.ddmin import Budget, ddmin
from splitbrain.control.local import node_names
from splitbrain.histories.faults import ends_fault, fault_start


@dataclass(frozen=True)
class Limits:
    time_limit_s: float
    concurrency: int
    nodes: int
    key_count: int | None = None       # None: the workload has no key-count option to narrow


@dataclass(frozen=True)
class Candidate:
    schedule: tuple[Any, ...]
    limits: Limits

    def describe(self, ops: int | None = None) -> str:
        o = f" / {ops:,} ops" if ops is not None else ""
        n = fault_count(self.schedule)
        return f"{n} fault{'' if n == 1 else 's'} / {self.limits.time_limit_s:g} s{o}"


def fault_count(schedule: Sequence[Any]) -> int:
    """The faults a schedule starts (its steps that end faults, and heals, are not faults)."""
    return sum(fault_start(getattr(s, "f", "")) is not None for s in schedule)


def fault_units(schedule: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The schedule as units to drop whole: each fault's start step with the first later step that ends it
    (dropping only a stop would leave the fault on until the final heal), and any other step on its own."""
    steps = list(schedule)
    taken: set[int] = set()
    units: list[tuple[Any, ...]] = []
    for i, step in enumerate(steps):
        if i in taken:
            continue
        unit = [i]
        if fault_start(step.f) is not None:
            end = next((j for j in range(i + 1, len(steps)) if j not in taken and ends_fault(steps[j].f, step.f)),
                       None)
            if end is not None:
                unit.append(end)
                taken.add(end)
        units.append(tuple(steps[k] for k in unit))
    return units


def fit_schedule(schedule: Sequence[Any], nodes: Sequence[str]) -> tuple[Any, ...]:
    """The steps that still make sense on ``nodes``: a step that names a node outside them is dropped
    (symbolic targets such as ``minority`` or ``one`` are resolved at run time, so they stay)."""
    kept = set(nodes)

    def names(value: Any) -> set[str]:
        if isinstance(value, str):
            return {value} if _is_node_name(value) else set()
        if isinstance(value, dict):
            return set().union(*(names(k) | names(v) for k, v in value.items())) if value else set()
        if isinstance(value, (list, tuple)):
            return set().union(*(names(v) for v in value)) if value else set()
        return set()

    return tuple(s for s in schedule if names(getattr(s, "value", None)) <= kept)


def _is_node_name(text: str) -> bool:
    return text.startswith("node") and text[4:].isdigit()


@dataclass(frozen=True)
class Trial:
    signature: frozenset[str]          # e.g. {"linearizable:cannot linearize"}; empty: the try passed
    ops: int = 0
    run_dir: str | None = None


@dataclass
class Found:
    start: Candidate
    best: Candidate
    failed_tries: int                  # the try (1..tries) on which the best candidate failed
    tries: int
    trials: int                        # tries made in all
    start_ops: int = 0
    best_ops: int = 0
    best_run_dir: str | None = None
    out_of_budget: bool = False
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        changed = "".join(f", {label} {a} -> {b}" for label, a, b in _limit_changes(self.start.limits, self.best.limits))
        return (f"from {self.start.describe(self.start_ops)} to {self.best.describe(self.best_ops)}{changed}, "
                f"failing on try {self.failed_tries} of up to {self.tries}")


def _limit_changes(start: Limits, best: Limits) -> list[tuple[str, Any, Any]]:
    """The limits besides faults and time that the search lowered: (label, from, to)."""
    pairs = (("concurrency", start.concurrency, best.concurrency), ("nodes", start.nodes, best.nodes),
             ("key-count", start.key_count, best.key_count))
    return [(label, a, b) for label, a, b in pairs if a != b]


def search(start: Candidate, try_candidate: Callable[[Candidate], Trial], signature: frozenset[str], *,
           tries: int = 3, budget_s: float = 600.0, start_ops: int = 0, clock: Callable[[], float] = time.monotonic,
           min_nodes: int = 1, on_progress: Callable[[str], None] | None = None) -> Found:
    """``min_nodes``: the fewest nodes the target runs on (its TargetSpec's ``min_nodes``)."""
    deadline = clock() + budget_s
    found = Found(start, start, tries, tries, 0, start_ops, start_ops)

    def say(text: str) -> None:
        found.log.append(text)
        if on_progress is not None:
            on_progress(text)

    def fails(c: Candidate) -> bool:
        hits = 0
        last: Trial | None = None
        for attempt in range(1, tries + 1):
            if clock() >= deadline:
                found.out_of_budget = True
                return False
            trial = try_candidate(c)
            found.trials += 1
            if trial.signature & signature:
                hits = attempt  # the try that failed: 1 = first
                last = trial
                break  # one failing try is enough to keep the candidate
        if last is not None:
            found.best, found.best_ops, found.best_run_dir, found.failed_tries = c, last.ops, last.run_dir, hits
            limits = "".join(f", {label} {b}" for label, _, b in _limit_changes(start.limits, c.limits))
            say(f"best: {found.best.describe(found.best_ops)}{limits}; {max(0.0, deadline - clock()):.0f} s left")
        return hits > 0

    def flat(units: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
        return tuple(sorted((s for unit in units for s in unit), key=lambda s: getattr(s, "at_s", 0)))

    budget = Budget(10**9)
    units = ddmin(fault_units(start.schedule),
                  lambda u: clock() < deadline and fails(replace(start, schedule=flat(u))), budget)
    best = replace(found.best, schedule=flat(units))
    for name in ("time_limit_s", "concurrency", "nodes", "key_count"):
        while clock() < deadline:
            value = getattr(best.limits, name)
            smaller = _halved(name, value, min_nodes)
            if smaller is None:
                break
            candidate = replace(best, limits=replace(best.limits, **{name: smaller}))
            if name == "time_limit_s":
                candidate = replace(candidate, schedule=tuple(s for s in candidate.schedule
                                                              if getattr(s, "at_s", 0) < smaller))
            if name == "nodes":
                candidate = replace(candidate, schedule=fit_schedule(candidate.schedule, node_names(smaller)))
            if not fails(candidate):
                break
            best = candidate
    found.best = best
    return found


def _halved(name: str, value: Any, min_nodes: int) -> Any:
    if value is None:
        return None
    if name == "time_limit_s":
        return value / 2 if value >= 2 else None
    if name in ("concurrency", "key_count"):
        return value // 2 if value >= 2 else None
    # nodes: two fewer keeps an odd size odd (a majority stays meaningful), never below the target's minimum
    if value - 2 >= min_nodes:
        return value - 2
    return min_nodes if min_nodes < value else None


def signature_of(results: dict[str, Any]) -> frozenset[str]:
    """What failed in a results.json: ``checker:anomaly`` for every invalid checker (anomaly when named)."""
    out = set()
    for name, part in results.items():  # a composed result: one entry per checker (checkers/result.py)
        if isinstance(part, dict) and part.get("valid") is False:
            inner = part.get("details") if isinstance(part.get("details"), dict) else part
            kinds = inner.get("anomaly_types") or part.get("anomaly_types") or [""]
            for kind in kinds if isinstance(kinds, list) else [""]:
                out.add(f"{name}:{kind}")
    if not out and results.get("valid") is False:
        out.add("invalid:")
    return frozenset(out)


def shrink_run(run_dir_path: str, *, tries: int = 3, budget_s: float = 600.0,
               on_progress: Callable[[str], None] | None = None) -> Found:
    """The adapter: candidates run through harness/run.py's ``repro_test`` and ``run`` as they are today."""
    import json
    from pathlib import Path

    from splitbrain.harness.run import repro_test as base_test
    from splitbrain.harness.run import run, schedule_of
    from splitbrain.harness.store import RunDir
    from splitbrain.harness.test import TestOptions

    run_dir = RunDir(Path(run_dir_path))
    original = base_test(run_dir)
    results = json.loads((Path(run_dir_path) / "results.json").read_text())
    signature = signature_of(results)
    if not signature:
        raise ValueError(f"{run_dir_path}: the run did not fail; nothing to shrink")
    stored = TestOptions.from_json(run_dir.read_test(), str(run_dir.test_file))
    start_ops = _ops_in(run_dir.history_file)
    start = Candidate(tuple(schedule_of(original)),
                      Limits(original.time_limit, original.concurrency, original.nodes.count, _key_count(stored)))
    # SSH nodes are a fixed list of hosts: their count is not ours to lower.
    min_nodes = original.target.min_nodes if stored.remote in ("local", "docker") else original.nodes.count

    def try_candidate(c: Candidate) -> Trial:
        # Through TestOptions, so that the candidate's test.json stores what it ran (repro replays it).
        options = TestOptions.from_json(run_dir.read_test(), str(run_dir.test_file))
        options.schedule = [step.to_json() for step in c.schedule]
        options.time_limit = c.limits.time_limit_s
        options.concurrency = c.limits.concurrency
        options.nodes = c.limits.nodes
        if c.limits.key_count is not None:
            options.workload_opts = {**options.workload_opts, "key-count": c.limits.key_count}
        options.repro_of = str(run_dir.path)
        options.store = str(run_dir.path.resolve().parent.parent)  # next to the original (store/name/run)
        test = options.build()
        outcome = run(test, console=False)
        ops = _ops_in(outcome.run_dir.history_file)
        return Trial(signature_of(outcome.results) if outcome.valid is False else frozenset(), ops,
                     str(outcome.run_dir.path))

    return search(start, try_candidate, signature, tries=tries, budget_s=budget_s, start_ops=start_ops,
                  min_nodes=min_nodes, on_progress=on_progress)


def _key_count(options: Any) -> int | None:
    """The workload's key count when it has one to narrow (the transactional workloads' ``key-count``)."""
    from splitbrain.harness.plugins import load_workload
    from splitbrain.harness.transactions import DEFAULTS

    if "key-count" not in getattr(load_workload(options.workload), "options", {}):
        return None
    return int(options.workload_opts.get("key-count", DEFAULTS["key-count"]))


def _ops_in(history_file: Any) -> int:
    """Client invocations in a run's history.jsonl (0 when it is missing)."""
    import json

    try:
        lines = history_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        op = json.loads(line) if line.strip() else {}
        count += op.get("type") == "invoke" and op.get("process") != "nemesis"
    return count


__all__: Sequence[str] = ("Candidate", "Found", "Limits", "Trial", "fault_count", "fault_units", "fit_schedule",
                          "search", "shrink_run", "signature_of", "write_shrunk")


def write_shrunk(found: Found, original_dir: str) -> str | None:
    """Mark the best candidate's run dir: shrunk.json with ``shrunk_from``, its schedule, the summary and the
    command that reproduces it. None when no candidate failed (the original stays the best)."""
    import json
    from pathlib import Path

    if found.best_run_dir is None:
        return None
    record = {"shrunk_from": original_dir, "summary": found.summary(),
              "schedule": [s.to_json() if hasattr(s, "to_json") else s for s in found.best.schedule],
              "limits": {"time_limit_s": found.best.limits.time_limit_s, "concurrency": found.best.limits.concurrency,
                         "nodes": found.best.limits.nodes, "key_count": found.best.limits.key_count},
              "repro": f"splitbrain repro {found.best_run_dir}", "trials": found.trials}
    path = Path(found.best_run_dir) / "shrunk.json"
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return str(path)
