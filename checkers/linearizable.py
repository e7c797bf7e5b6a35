"""Linearizability: the Wing–Gong–Lowe search with memoisation, P-compositionality and sound prunings.

The search is Porcupine's (a doubly-linked list of call/return events; linearize a pending call, or
backtrack when a return is reached whose op is not yet linearized; remember every (linearized set, state)
configuration already explored). On top of it, prunings that never change a verdict (each is checked
against a brute-force search in tests/unit/test_linearizable_bruteforce.py):

1. Indeterminate (info) ops have no return event: an info op never applied is one that never happened.
   The search succeeds as soon as every completed op is placed, and never applies an info op where it
   would not change the state (not applying it is always at least as good).
2. Symmetry: of two identical ops (same f, arguments, outcome, type) where one's call and return both
   come first, the earlier one is linearized first. Swapping them in any valid order keeps it valid.
3. A completed op that never changes the state (a read) and is legal now is placed without branching:
   moving it earlier, to a point inside its interval with the same state, keeps any valid order valid.
4. Within a run of calls with no return between them, reads are tried first.
5. Subsumption: a configuration with the same completed ops and state as one already explored, but one
   more info op applied, cannot succeed where that one failed (every continuation of it is also a
   continuation of the other, which still has the info op available and need never apply it).
6. Info ops just in time: an info op X is placed only right before an op Y that needs it. If Y were
   legal without X and is a read, Y then X is as good (an info op has no return, so nothing forces X
   before Y); if Y overwrites the state (a write, a successful CAS, a lock grant), X need not happen at
   all. So after placing X the next op must be illegal in the state before X; the memo key holds that
   state. This is what makes Jepsen's etcd histories, full of timed-out writes, cheap.

A time limit and a bound on remembered configurations make a search that explodes end with ``unknown``
and its cause instead of hanging or exhausting memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from splitbrain.checkers import progress
from splitbrain.checkers.result import Result, merge_validity
from splitbrain.histories.history import History, Operation, hashable

DEFAULT_MAX_CONFIGS = 20_000_000
PREFIX_STATES_KEPT = 64  # the failure's last placed ops, each with the state after it (Porcupine's view)
_CHECK_EVERY = 1 << 14


class SearchAborted(Exception):
    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


@dataclass
class _Failure:
    """The deepest dead ends the search reached: linearized prefixes, state, and the blocking op."""

    depth: int = -1
    ends: list[tuple[tuple[int, ...], int, int]] = field(default_factory=list)  # (prefix, state id, op)


@dataclass
class PartitionOutcome:
    valid: Any
    ops: list[Operation]
    configs: int
    states: list[Any]
    failure: _Failure | None = None
    cause: str | None = None
    label: Any = None
    steps: int = 0
    model: Any = None  # the model this partition was searched with (a per-key submodel, or the model)


def prepared_operations(history: History, model: Any) -> list[Operation]:
    """Client operations the model must explain: failed ops dropped, model.prepare applied."""
    prepare = getattr(model, "prepare", None)  # getattr, not isinstance: protocol checks are slow
    out = []
    for op in history.operations():
        if op.type == "fail":
            continue
        if prepare is not None:
            op = prepare(op)
            if op is None:
                continue
        out.append(op)
    return out


_SCALARS = (int, str, float, bool, type(None))


def _identity(op: Operation, ok: bool) -> Any:
    arg = op.invoke.value
    result = op.completion.value if ok else None  # type: ignore[union-attr]
    return (op.f, arg if type(arg) in _SCALARS else hashable(arg),
            result if type(result) in _SCALARS else hashable(result), ok)


_DOMINATOR_WINDOW = 8  # earlier identical ops looked at per op: any subset of the constraints is sound


def _dominators(ops: Sequence[Operation], ok: Sequence[bool], calls: Sequence[int], rets: Sequence[float]) -> list[int]:
    """Per op, the bit mask of identical ops whose call and return both come earlier (pruning 2)."""
    classes: dict[Any, list[int]] = {}
    for i, op in enumerate(ops):
        classes.setdefault(_identity(op, ok[i]), []).append(i)
    dom = [0] * len(ops)
    for members in classes.values():
        if len(members) < 2:
            continue
        members.sort(key=calls.__getitem__)
        for pos in range(1, len(members)):
            b = members[pos]
            rb = rets[b]
            mask = 0
            for a in members[max(0, pos - _DOMINATOR_WINDOW):pos]:
                if rets[a] < rb or rets[a] == rb == _NEVER:
                    mask |= 1 << a
            dom[b] = mask
    return dom


_NEVER = float("inf")


# Steps per op (plus a constant) the first attempt may take; None: no first attempt (tests use it to
# exercise the symmetry masks on small histories too).
FIRST_ATTEMPT_STEPS: tuple[int, int] | None = (8, 64)


class _StepBudget(Exception):
    """The cheap first attempt (without symmetry masks) did not decide within its budget."""


def search(ops: list[Operation], model: Any, *, deadline: float | None = None,
           max_configs: int = DEFAULT_MAX_CONFIGS, prune: bool = True) -> PartitionOutcome:
    """Is there a linearization of ``ops`` (one partition) under ``model``?

    ``prune=False`` turns prunings 2-6 off (the baseline the benchmark compares against). Most histories
    are decided in a few steps per op, where computing the symmetry masks (pruning 2) costs more than it
    saves: a first attempt goes without them, and only a search that needs more steps starts over with them.
    """
    if prune and FIRST_ATTEMPT_STEPS is not None:
        per_op, base = FIRST_ATTEMPT_STEPS
        try:
            return _search(ops, model, deadline, max_configs, prune, symmetry=False,
                           step_budget=per_op * len(ops) + base)
        except _StepBudget:
            pass
    return _search(ops, model, deadline, max_configs, prune, symmetry=prune, step_budget=-1)


def _search(ops: list[Operation], model: Any, deadline: float | None, max_configs: int, prune: bool, *,
            symmetry: bool, step_budget: int) -> PartitionOutcome:
    n = len(ops)
    ok = [op.type == "ok" for op in ops]
    calls = [op.call for op in ops]
    rets: list[float] = [op.ret if ok[i] else _NEVER for i, op in enumerate(ops)]  # type: ignore[misc]
    n_ok = sum(ok)
    states: list[Any] = [model.init()]
    if n_ok == 0:
        return PartitionOutcome(True, ops, 0, states)
    info = [not x for x in ok]
    read_only = getattr(model, "read_only", None) if prune else None
    forced = [ok[i] and read_only is not None and read_only(op) for i, op in enumerate(ops)]
    dom = _dominators(ops, ok, calls, rets) if symmetry else [0] * n
    bits = [1 << i for i in range(n)]
    # Pruning 6: ops that never need an info op placed just before them (reads, and ops whose result
    # does not depend on the state they find: writes, successful CAS).
    overwrites = getattr(model, "overwrites", None) if prune else None
    needs_nothing = [bool((read_only is not None and read_only(op)) or (overwrites is not None and overwrites(op)))
                     for op in ops]

    # Events in history order; a run of calls with no return in between lists reads first (pruning 4).
    events: list[tuple[int, int]] = []
    for i in range(n):
        events.append((calls[i], i))
        if ok[i]:
            events.append((rets[i], n + i))  # type: ignore[arg-type]
    events.sort()
    order: list[int] = []
    run: list[int] = []
    for _, node in events:
        if node < n:
            run.append(node)
            continue
        run.sort(key=lambda i: not forced[i])
        order.extend(run)
        run = []
        order.append(node)
    order.extend(run)

    head, tail = 2 * n, 2 * n + 1
    nxt = [tail] * (2 * n + 2)
    prv = [head] * (2 * n + 2)
    prev_node = head
    for node in order:
        nxt[prev_node] = node
        prv[node] = prev_node
        prev_node = node
    nxt[prev_node] = tail
    prv[tail] = prev_node

    sid_of: dict[Any, int] = {states[0]: 0}
    table: dict[int, int] = {}
    step = model.step

    def next_state(sid: int, i: int) -> int:
        legal, new = step(states[sid], ops[i])
        if not legal:
            return -1
        new_id = sid_of.get(new)
        if new_id is None:
            new_id = sid_of[new] = len(states)
            if new_id >= state_bits - 1:
                raise SearchAborted(f"more than {state_bits - 2:,} distinct model states")
            states.append(new)
        return new_id

    info_mask = sum(bits[i] for i in range(n) if info[i]) if prune else 0
    cache: set[int] = set()
    n_configs = 0
    stack: list[int] = []
    saved: list[int] = []
    saved_after: list[int] = []
    # after_info: the state before the last placed op when that op was an info op, else -1. The next op
    # must then be one that needed it (pruning 6); configurations differ by it, so the memo key holds it.
    after_info = -1
    state_bits = 1 << 24
    failure = _Failure()
    lin = 0
    sid = 0
    n_done = 0
    node = nxt[head]
    steps = 0
    while True:
        steps += 1
        if steps == step_budget:
            raise _StepBudget
        if steps & (_CHECK_EVERY - 1) == 0:
            if deadline is not None and time.monotonic() > deadline:
                raise SearchAborted("time limit reached")
            if n_configs > max_configs:
                raise SearchAborted(f"memory bound reached ({max_configs:,} configurations remembered)")
        if node < n:
            i = node
            d = dom[i]
            if d and lin & d != d:
                node = nxt[node]
                continue
            if after_info >= 0 and needs_nothing[i]:
                k = after_info * n + i
                before = table.get(k)
                if before is None:
                    before = table[k] = next_state(after_info, i)
                if before >= 0:  # legal without the info op just placed: that op was not needed here
                    node = nxt[node]
                    continue
            k = sid * n + i
            ns = table.get(k)
            if ns is None:
                ns = table[k] = next_state(sid, i)
            if ns >= 0 and not (ns == sid and info[i]):
                newlin = lin | bits[i]
                new_after = sid if info[i] else -1
                base = ((new_after + 1) * state_bits + ns) << n
                key = base | newlin
                if key in cache:
                    fresh = False
                else:
                    # Subsumption (pruning 5): the same completed ops and state, but one applied info op
                    # fewer, was explored already: having that op still available is never worse.
                    fresh = True
                    applied_info = newlin & info_mask
                    while applied_info:
                        b = applied_info & -applied_info
                        if (base | (newlin ^ b)) in cache:
                            fresh = False
                            break
                        applied_info ^= b
                    cache.add(key)
                if fresh:
                    n_configs += 1
                    stack.append(i)
                    saved.append(sid)
                    saved_after.append(after_info)
                    lin = newlin
                    sid = ns
                    after_info = new_after
                    # lift the op's events out of the list
                    p, q = prv[i], nxt[i]
                    nxt[p] = q
                    prv[q] = p
                    if ok[i]:
                        r = n + i
                        p, q = prv[r], nxt[r]
                        nxt[p] = q
                        prv[q] = p
                        n_done += 1
                        if n_done == n_ok:
                            return PartitionOutcome(True, ops, n_configs, states, steps=steps)
                    node = nxt[head]
                    continue
                if not forced[i]:
                    node = nxt[node]
                    continue
                # A forced placement whose configuration failed before: this one fails too.
            else:
                node = nxt[node]
                continue
        else:
            depth = len(stack)
            if depth >= failure.depth:
                if depth > failure.depth:
                    failure.depth = depth
                    failure.ends = []
                if len(failure.ends) < 16:
                    failure.ends.append((tuple(stack), sid, node - n))
        # backtrack: undo forced placements, then the last real choice, and try the next call after it
        while True:
            if not stack:
                return PartitionOutcome(False, ops, n_configs, states, failure, steps=steps)
            i = stack.pop()
            sid = saved.pop()
            after_info = saved_after.pop()
            lin ^= bits[i]
            if ok[i]:
                r = n + i
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                n_done -= 1
            nxt[prv[i]] = i
            prv[nxt[i]] = i
            if not forced[i]:
                node = nxt[i]
                break


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


def _prefix_states(outcome: PartitionOutcome, prefix: Sequence[int], model: Any) -> list[list[Any]]:
    """[invoke index, state after it] for the last ``PREFIX_STATES_KEPT`` ops of a linearized prefix,
    replayed from the initial state (every step is legal: the search placed them in this order)."""
    step = (outcome.model if outcome.model is not None else model).step
    state = outcome.states[0]
    after = []
    for i in prefix:
        _, state = step(state, outcome.ops[i])
        after.append(state)
    first = max(0, len(prefix) - PREFIX_STATES_KEPT)
    return [[outcome.ops[prefix[k]].call, _describe_state(model, after[k])] for k in range(first, len(prefix))]


def _explain(outcome: PartitionOutcome, model: Any) -> tuple[dict[str, Any], str]:
    failure = outcome.failure
    assert failure is not None
    ops = outcome.ops
    prefix, sid, blocked = failure.ends[0]
    op = ops[blocked]
    concurrent = [o for o in ops if o is not op and o.call < op.ret  # type: ignore[operator]
                  and (o.ret is None or o.ret > op.call)]
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
                       max_configs: int = DEFAULT_MAX_CONFIGS, prune: bool = True) -> Result:
    """Check a history against a model; valid True, False, or "unknown" (time or memory bound)."""
    deadline = time.monotonic() + time_limit if time_limit is not None else None
    partition = getattr(model, "partition", None)
    parts = partition(history) if partition is not None else [history]
    submodel = getattr(model, "submodel", None)
    outcomes: list[PartitionOutcome] = []
    total_ops = 0
    for done, part in enumerate(parts):
        progress.report("partitions", done, len(parts), total_ops)
        part_model = submodel(part) if submodel is not None else model
        ops = prepared_operations(part, part_model)
        total_ops += len(ops)
        label = ops[0].key if ops and len(parts) > 1 else None
        try:
            outcome = search(ops, part_model, deadline=deadline, max_configs=max_configs, prune=prune)
        except SearchAborted as e:
            outcome = PartitionOutcome("unknown", ops, 0, [], cause=e.cause)
        outcome.label = label
        outcome.model = part_model
        outcomes.append(outcome)
        if outcome.valid is False:
            break  # one invalid partition decides the verdict
    valid = merge_validity(o.valid for o in outcomes)
    details: dict[str, Any] = {
        "model": getattr(model, "name", type(model).__name__),
        "partitions": len(parts),
        "ops": total_ops,
        "configs": sum(o.configs for o in outcomes),
        "steps": sum(o.steps for o in outcomes),
    }
    explanation = ""
    if valid is False:
        bad = next(o for o in outcomes if o.valid is False)
        detail, explanation = _explain(bad, model)
        if bad.label is not None:
            detail["key"] = bad.label
            explanation = f"key {bad.label!r}: " + explanation
        details["failure"] = detail
    elif valid == "unknown":
        causes = sorted({o.cause for o in outcomes if o.cause})
        details["cause"] = "; ".join(causes)
        explanation = "search stopped before a verdict: " + details["cause"]
        if time_limit is not None and "time" in details["cause"]:
            explanation += f" ({time_limit:g} s)"
    return Result(valid, details, explanation)


class LinearizableChecker:
    """The Checker protocol around check_linearizable: ``opts`` may set time_limit and max_configs."""

    def __init__(self, model: Any, *, time_limit: float | None = None) -> None:
        self.model = model
        self.time_limit = time_limit

    def check(self, test: Any, history: History, opts: Any) -> Result:
        return check_linearizable(history, self.model, time_limit=opts.get("time_limit", self.time_limit),
                                  max_configs=opts.get("max_configs", DEFAULT_MAX_CONFIGS))
