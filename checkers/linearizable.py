"""Linearizability: the Wing–Gong–Lowe search (checkers/wgl.py) over each partition of a history.

A model that splits a history into independent parts (P-compositionality: per key, per lock) has each
part searched on its own. The parts are searched side by side with growing step budgets (each gets B
steps, then 2B, ...), so one hard valid part cannot hold back an easy invalid one: the first invalid
part decides. The search runs compiled (checkers/_wgl.c) when the extension was built, else in pure
Python (the reference: same algorithm, same verdicts).

A time limit and a memory budget (by default a quarter of the memory available when the check starts)
make a search that explodes end with ``unknown`` and its cause instead of hanging or exhausting memory.
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from splitbrain.checkers import progress
from splitbrain.checkers.budget import default_max_memory
from splitbrain.checkers.result import Result, merge_validity
from splitbrain.checkers.wgl import PartitionOutcome, PythonSearch, SearchAborted
from splitbrain.histories.history import History, Operation

DEFAULT_MAX_CONFIGS = None  # no bound on the count: the memory budget bounds the search
ENGINES = ("auto", "native", "python")

# Step budgets of the rounds that interleave partitions: the first round's, and the largest slice any
# round gives a partition at once (time limits are checked between slices).
FIRST_ROUND_STEPS = 4096
MAX_SLICE_STEPS = {"native": 1 << 22, "python": 1 << 16}
PREFIX_STATES_KEPT = 64  # the failure's last placed ops, each with the state after it (Porcupine's view)


def _may_have_happened(operations: Sequence[Operation]) -> list[Operation]:
    return [op for op in operations if (c := op.completion) is None or c.type != "fail"]


def completed_or_pending(history: History) -> list[Operation]:
    """Client operations that may have happened: every one but those that failed."""
    return _may_have_happened(history.operations())


def _prepared(operations: Sequence[Operation], model: Any) -> list[Operation]:
    prepare = getattr(model, "prepare", None)  # getattr, not isinstance: protocol checks are slow
    ops = _may_have_happened(operations)
    if prepare is None:
        return ops
    return [p for op in ops if (p := prepare(op)) is not None]


def prepared_operations(history: History, model: Any) -> list[Operation]:
    """Client operations the model must explain: failed ops dropped, model.prepare applied."""
    return _prepared(history.operations(), model)


def partitions(history: History, model: Any) -> list[tuple[Sequence[Operation], Any]]:
    """The independent parts of a history (P-compositionality), each with its model."""
    split = getattr(model, "split", None)
    if split is not None:
        return split(history)
    partition = getattr(model, "partition", None)
    if partition is None:
        return [(history.operations(), model)]
    submodel = getattr(model, "submodel", None)
    return [(part.operations(), submodel(part) if submodel is not None else model) for part in partition(history)]


def native_engine_available() -> bool:
    try:
        from splitbrain.checkers import wgl_native  # noqa: F401
    except ImportError:
        return False
    return True


def _engine(engine: str, prune: bool) -> str:
    if engine not in ENGINES:
        raise ValueError(f"unknown search engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine == "python" or not prune:
        return "python"
    if engine == "native" or native_engine_available():
        return "native"
    return "python"


def _partition_search(operations: Sequence[Operation], model: Any, engine: str, max_configs: int | None,
                      max_memory: int, prune: bool) -> Any:
    if engine == "native":
        from splitbrain.checkers.wgl_native import NativeSearch

        return NativeSearch(operations, model, max_configs=max_configs, max_memory=max_memory)
    return PythonSearch(_prepared(operations, model), model, max_configs=max_configs, max_memory=max_memory,
                        prune=prune)


class _Totals:
    """Steps and configurations of every partition searched (for the result's details)."""

    def __init__(self) -> None:
        self.steps = 0
        self.configs = 0

    def add(self, search: Any) -> None:
        self.steps += search.steps
        self.configs += search.configs


def _decide(parts: list[Callable[[], Any]], outcomes: list[PartitionOutcome | None], engine: str,
            deadline: float | None, max_memory: int) -> _Totals:
    """Run the partitions' searches side by side with doubling budgets until each is decided, one is
    invalid, the time is up, or their memory passes ``max_memory`` (the largest one is then stopped).

    ``parts`` make the searches, in the first round, one by one: the parts after an invalid one found in
    that round are never even prepared. A decided search is dropped at once (its tables freed)."""
    totals = _Totals()
    budget = FIRST_ROUND_STEPS
    alive: list[tuple[int, Any]] = list(enumerate(parts))
    max_slice = MAX_SLICE_STEPS[engine]
    first_round = True
    decided = decided_ops = 0
    while alive:
        still = []
        for slot, search in alive:
            if first_round:
                progress.report("partitions", decided, len(parts), decided_ops)
                search = search()
            given = 0
            outcome = None
            while outcome is None and given < budget:
                if deadline is not None and time.monotonic() > deadline:
                    outcome = PartitionOutcome("unknown", search.ops, search.configs, [], steps=search.steps,
                                               cause="time limit reached")
                    break
                slice_steps = min(budget - given, max_slice)
                try:
                    outcome = search.run(slice_steps)
                except SearchAborted as e:
                    outcome = PartitionOutcome("unknown", search.ops, search.configs, [], cause=e.cause,
                                               steps=search.steps)
                given += slice_steps
            if outcome is not None:
                outcome.model = getattr(search, "model", None)
                outcomes[slot] = outcome
                totals.add(search)
                decided += 1
                decided_ops += len(search.ops)
                progress.report("partitions", decided, len(parts), decided_ops)
                if outcome.valid is False:
                    for _, other in still:
                        totals.add(other)
                    return totals  # one invalid partition decides the verdict
                continue
            still.append((slot, search))
        while still and sum(s.memory for _, s in still) > max_memory:
            slot, search = max(still, key=lambda x: x[1].memory)
            outcomes[slot] = PartitionOutcome(
                "unknown", search.ops, search.configs, [], steps=search.steps,
                cause=f"memory bound reached ({max_memory >> 20:,} MiB for the search)")
            totals.add(search)
            still.remove((slot, search))
        alive = still
        budget *= 2
        first_round = False
    return totals


# -- the public checker ----------------------------------------------------------------------------------

def _describe_state(model: Any, state: Any) -> str:
    describe = getattr(model, "describe", None)
    return describe(state) if describe else repr(state)


def op_summary(op: Operation) -> dict[str, Any]:
    """A JSON-able summary of an operation, for reports."""
    out = {"process": op.process, "f": op.f, "type": op.type, "invoke_index": op.call,
           "complete_index": op.ret, "value": op.value}
    if op.key is not None:
        out["key"] = op.key
    return out


def op_text(op: Operation) -> str:
    """``[12..15] process 3 cas [1, 2] -> ok``: positions (invoke..completion), what it did, its outcome."""
    arg = "" if op.invoke.value is None else f" {op.invoke.value!r}"
    key = f" key={op.key!r}" if op.key is not None else ""
    if op.type == "ok":
        result = op.completion.value  # type: ignore[union-attr]
        # A read's invocation has no value: its result is always shown, nil included (Jepsen's word).
        same = result == op.invoke.value and op.invoke.value is not None
        outcome = "ok" if same else f"ok {'nil' if result is None else repr(result)}"
    else:
        outcome = "info (may or may not have happened)" if op.type == "info" else op.type
    done = f"..{op.ret}" if op.ret is not None else "..never completed"
    return f"[{op.call}{done}] process {op.process} {op.f}{key}{arg} -> {outcome}"


def _call_of(op: Operation) -> int:
    return op.invoke.index


def _prefix_states(outcome: PartitionOutcome, prefix: Sequence[int], model: Any) -> list[list[Any]]:
    """[invoke index, state after it] for the last ``PREFIX_STATES_KEPT`` ops of a linearized prefix,
    replayed from the initial state (every step is legal: the search placed them in this order)."""
    first = max(0, len(prefix) - PREFIX_STATES_KEPT)
    ops, states = outcome.ops, outcome.states
    sids = outcome.replay(prefix) if outcome.replay is not None else None  # the compiled search's steps
    if sids is not None and -1 not in sids:
        shown: dict[int, str] = {}  # a state id is described once
        texts = [shown.get(sid) or shown.setdefault(sid, _describe_state(model, states[sid])) for sid in sids[first:]]
    else:
        step = (outcome.model if outcome.model is not None else model).step
        state = states[0]
        after = []
        for i in prefix:
            _, state = step(state, ops[i])
            after.append(state)
        texts = [_describe_state(model, state) for state in after[first:]]
    return [[ops[i].invoke.index, text] for i, text in zip(prefix[first:], texts, strict=True)]


def _explain(outcome: PartitionOutcome, model: Any) -> tuple[dict[str, Any], str]:
    failure = outcome.failure
    assert failure is not None
    ops = outcome.ops
    prefix, sid, blocked = failure.ends[0]
    op = ops[blocked]
    call = op.call
    called_before = bisect_left(ops, op.ret, key=_call_of)  # ops are in call order: none after these
    concurrent = [o for o in ops[:called_before] if o is not op and ((c := o.completion) is None or c.index > call)]
    final_states = []
    for _, s, _ in failure.ends:
        d = _describe_state(model, outcome.states[s])
        if d not in final_states:
            final_states.append(d)
    detail = {
        "op": op_summary(op),
        "concurrent": [op_summary(o) for o in concurrent],
        "longest_linearized_prefix": len(prefix),
        "partial_linearization": [ops[i].call for i in prefix],
        "final_states": final_states,
        "prefix_states": _prefix_states(outcome, prefix, model),
    }
    lines = [f"cannot linearize {op_text(op)}",
             f"  the longest linearizable prefixes place {len(prefix)} of {len(ops)} ops; after them the state "
             + ("is " + final_states[0] if len(final_states) == 1 else "could be one of " + ", ".join(final_states))]
    if prefix:
        tail = prefix[-3:]
        lines.append("  last placed: " + "; ".join(op_text(ops[i]) for i in tail))
    if concurrent:
        shown = concurrent[:8]
        more = f" (and {len(concurrent) - 8} more)" if len(concurrent) > 8 else ""
        lines.append(f"  concurrent with it{more}:")
        lines.extend("    " + op_text(o) for o in shown)
    return detail, "\n".join(lines)


def check_linearizable(history: History, model: Any, *, time_limit: float | None = None,
                       max_configs: int | None = DEFAULT_MAX_CONFIGS, max_memory: int | None = None,
                       prune: bool = True, engine: str = "auto") -> Result:
    """Check a history against a model; valid True, False, or "unknown" (time or memory bound).

    ``max_memory`` (bytes) bounds the search's tables (default: a quarter of the available memory);
    ``max_configs`` also bounds the count of remembered configurations. ``engine`` "native" is the
    compiled search, "python" the reference (also used for ``prune=False``, the benchmark's baseline).
    """
    deadline = time.monotonic() + time_limit if time_limit is not None else None
    chosen = _engine(engine, prune)
    budget = max_memory if max_memory is not None else default_max_memory()
    parts = partitions(history, model)
    outcomes: list[PartitionOutcome | None] = [None] * len(parts)
    totals = _decide([functools.partial(_partition_search, operations, part_model, chosen, max_configs, budget, prune)
                      for operations, part_model in parts], outcomes, chosen, deadline, budget)
    decided = [o for o in outcomes if o is not None]
    if len(parts) > 1:
        for o in decided:
            o.label = o.ops[0].key if o.ops else None
    valid = merge_validity(o.valid for o in decided) if len(decided) == len(parts) or \
        any(o.valid is False for o in decided) else "unknown"
    details: dict[str, Any] = {
        "model": getattr(model, "name", type(model).__name__),
        "partitions": len(parts),
        "ops": sum(len(o.ops) for o in decided),
        "configs": totals.configs,
        "steps": totals.steps,
        "engine": chosen,
    }
    explanation = ""
    if valid is False:
        bad = next(o for o in decided if o.valid is False)
        detail, explanation = _explain(bad, model)
        if bad.label is not None:
            detail["key"] = bad.label
            explanation = f"key {bad.label!r}: " + explanation
        details["failure"] = detail
    elif valid == "unknown":
        causes = sorted({o.cause for o in decided if o.cause})
        details["cause"] = "; ".join(causes)
        explanation = "search stopped before a verdict: " + details["cause"]
        if time_limit is not None and "time" in details["cause"]:
            explanation += f" ({time_limit:g} s)"
    return Result(valid, details, explanation)

