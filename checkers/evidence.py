"""Evidence shrinking: the smallest sub-history that a checker still calls invalid.

    shrink_evidence(history, check) -> Evidence(history, ...)   # pure: History -> History

A report that shows 6 ops instead of 600 is one a person can read. First the failing key alone (the
``key`` the linearizability checker names), then delta debugging (ddmin.py) over its operations: an
operation is removed with its invocation and its completion together, so every candidate pairs up
exactly like the original; the nemesis is dropped.

Removing ops can make a failure trivial: a read of 3 without the write of 3 fails, and says nothing. So
when the original's values are all explainable -- its ops made concurrent (every invocation before every
completion: real time forgotten) pass the check -- a candidate must keep that property: what fails is
then the real-time order, which is what a linearizability violation is. (When even the concurrent
original fails, a value came from nowhere, and that op alone is the evidence.) The result still fails ``check`` and no single
operation can be removed from it (1-minimal), unless ``max_checks`` ran out first. Ops keep their
indices, so a line of the shrunk file names the same op as the original.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from splitbrain.checkers.ddmin import Budget, ddmin
from splitbrain.checkers.result import Result
from splitbrain.histories.history import History, Operation

DEFAULT_MAX_CHECKS = 3000


@dataclass(frozen=True)
class Evidence:
    history: History       # the minimal failing sub-history
    result: Result         # what ``check`` says of it
    ops_before: int
    checks: int
    minimal: bool          # False: max_checks ran out first

    def summary(self) -> str:
        done = "no single op can be removed" if self.minimal else "check budget spent, not yet minimal"
        return (f"shrunk from {self.ops_before} to {len(self.history.operations())} operations "
                f"in {self.checks} checks ({done})")


def of_operations(history: History, operations: Sequence[Operation]) -> History:
    """The sub-history of ``operations`` (each with its completion), in the original order."""
    keep = {id(o.invoke) for o in operations} | {id(o.completion) for o in operations if o.completion is not None}
    return History([op for op in history if id(op) in keep], history.source)


def concurrent(operations: Sequence[Operation], source: str | None = None) -> History:
    """The operations all concurrent: every invocation, then every completion (one process each)."""
    invokes = [o.invoke.with_(process=i, index=i) for i, o in enumerate(operations)]
    n = len(invokes)
    completions = [o.completion.with_(process=i, index=n + i) for i, o in enumerate(operations)
                   if o.completion is not None]
    return History(invokes + completions, source)


def shrink_evidence(history: History, check: Callable[[History], Result], *,
                    max_checks: int = DEFAULT_MAX_CHECKS) -> Evidence:
    """A minimal sub-history that ``check`` still calls invalid; ValueError when ``history`` is not invalid."""
    first = check(history)
    if first.valid is not False:
        raise ValueError("the history is not invalid: there is no evidence to shrink")
    budget = Budget(max_checks)
    seen: dict[tuple[int, ...], bool] = {}
    start = history
    key = (first.details.get("failure") or {}).get("key") if isinstance(first.details, dict) else None
    if key is not None:
        part = history.by_key().get(key)
        if part is not None and budget.take() and check(part).valid is False:
            start = part
    operations = list(start.operations())
    explainable = budget.take() and check(concurrent(operations, history.source)).valid is True

    def fails(candidate: list[Operation]) -> bool:
        signature = tuple(o.call for o in candidate)
        if signature not in seen:
            seen[signature] = bool(candidate) and check(of_operations(start, candidate)).valid is False and (
                not explainable or check(concurrent(candidate, history.source)).valid is True)
        return seen[signature]

    kept = ddmin(operations, fails, budget)
    smallest = of_operations(start, kept)
    minimal = budget.left > 0
    return Evidence(smallest, check(smallest), len(history.operations()), budget.used, minimal)
