"""The compiled search (checkers/_wgl.c) behind the interface of wgl.PythonSearch.

Each op becomes a few integers: its kind and arguments when the model can say them (``compile_op``: the
register family, whose steps the C code computes itself), else the kind CALLBACK and its identity class,
stepped by the model in Python once per (state, op) pair. Values and states share one table of ids, so
a read of v is legal in state s exactly when id(v) == s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from splitbrain.checkers import _wgl  # ImportError when the extension was not built: wgl.PythonSearch then
from splitbrain.checkers.budget import default_max_memory
from splitbrain.checkers.model import (
    ACQUIRE,
    APPEND,
    CALLBACK,
    CAS,
    OVERWRITES,
    READ,
    READ_ONLY,
    RELEASE,
    WRITE,
    CompiledOps,
)
from splitbrain.checkers.wgl import Failure, PartitionOutcome, SearchAborted, identity
from splitbrain.histories.history import Operation, hashable

_INT32 = 1 << 31
_NO_CONFIG_LIMIT = -1


class NativeSearch:
    """A resumable search of one partition in C; ``run(budget)`` as wgl.PythonSearch.run.

    ``operations`` are the partition's operations; failed ones are dropped here, and the model prepares
    the rest (``native_kinds`` for the C code to do it, else ``compile``, or ``prepare`` and ``compile_op``
    one by one): ``self.ops`` holds what is left.
    """

    def __init__(self, operations: Sequence[Operation], model: Any, *, max_configs: int | None = None,
                 max_memory: int | None = None) -> None:
        self.model = model
        self.max_configs = max_configs
        self.max_memory = max_memory or default_max_memory()
        states: list[Any] = [model.init()]
        sid_of: dict[Any, int] = {states[0]: 0}
        self.states = states

        def intern(value: Any) -> int:
            i = sid_of.get(value)
            if i is None:
                i = sid_of[value] = len(states)
                states.append(value)
            return i

        native_kinds = getattr(model, "native_kinds", None)
        spec = native_kinds() if native_kinds is not None else None
        compiled = _wgl.register_ops(operations, *spec, sid_of, states, hashable) if spec is not None else None
        if compiled is not None:
            ops, kinds, a1, a2, calls, rets = compiled
        else:
            ops, kinds, a1, a2, calls, rets = _compiled_in_python(operations, model, intern)
        self.ops = ops
        strings = _string_states(states, kinds, a1, a2) if APPEND in kinds else None
        if CALLBACK in kinds and -1 in a1:
            _classify_callbacks(ops, kinds, a1, a2, model)
        step = model.step
        limit = _INT32 - 2
        state_bytes = self._state_bytes = [0]
        state_budget = self.max_memory // 2  # the other half: the C search's tables

        def next_state(sid: int, i: int) -> int:  # not a method: the C search holds it, and no cycle
            legal, new = step(states[sid], ops[i])
            if not legal:
                return -1
            count = len(states)
            new_id = intern(new)
            if new_id == count:  # a new state: the memory it takes counts against the budget
                state_bytes[0] += sys.getsizeof(new) + 100
                if state_bytes[0] > state_budget:
                    raise SearchAborted(f"memory bound reached ({new_id:,} model states, about "
                                        f"{state_bytes[0] >> 20:,} MiB)")
                if new_id >= limit:
                    raise SearchAborted(f"more than {limit:,} distinct model states")
            return new_id

        self._search = _wgl.Search(kinds, a1, a2, calls, rets, 0, next_state, self.max_memory // 2,
                                   _NO_CONFIG_LIMIT if max_configs is None else max_configs, True, strings)
        self.states = _States(states, self._search) if strings is not None else states

    @property
    def steps(self) -> int:
        return self._search.steps

    @property
    def configs(self) -> int:
        return self._search.configs

    @property
    def memory(self) -> int:
        return self._search.memory + self._state_bytes[0]

    def run(self, budget: int) -> PartitionOutcome | None:
        status = self._search.run(budget)
        if status == _wgl.RUNNING:
            return None
        s = self._search
        if status == _wgl.VALID:
            return PartitionOutcome(True, self.ops, s.configs, self.states, steps=s.steps, order=s.order())
        if status == _wgl.INVALID:
            depth, ends = s.failure()
            outcome = PartitionOutcome(False, self.ops, s.configs, self.states, Failure(depth, ends), steps=s.steps)
            outcome.replay = s.replay
            return outcome
        if status == _wgl.CONFIGS:
            raise SearchAborted(f"memory bound reached ({self.max_configs:,} configurations remembered)")
        raise SearchAborted(f"memory bound reached ({s.configs:,} configurations, {s.memory >> 20:,} MiB of "
                            f"{self.max_memory >> 20:,} MiB)")


def _compiled_in_python(operations: Sequence[Operation], model: Any, intern: Callable[[Any], int]) -> tuple[
        list[Operation], list[int], list[int], list[int], list[int], list[int]]:
    """(ops, kinds, a1, a2, calls, rets) as _wgl.register_ops gives them, by the model's Python code."""
    operations = [op for op in operations if (c := op.completion) is None or c.type != "fail"]
    compile_ops = getattr(model, "compile", None)
    compiled = compile_ops(operations, intern) if compile_ops is not None else _compiled(operations, model, intern)
    ops, kinds, a1, a2 = compiled
    base = ops[0].invoke.index if ops else 0
    calls = [op.invoke.index - base for op in ops]
    rets = [-1 if (c := op.completion) is None or c.type != "ok" else c.index - base for op in ops]
    if ops and max(calls[-1], max(rets)) >= _INT32 - 1:  # sparse indices: their ranks keep the order
        rank = {p: r for r, p in enumerate(sorted(set(calls) | {r for r in rets if r >= 0}))}
        calls = [rank[p] for p in calls]
        rets = [rank[p] if p >= 0 else -1 for p in rets]
    return ops, kinds, a1, a2, calls, rets


def _compiled(operations: Sequence[Operation], model: Any, intern: Callable[[Any], int]) -> CompiledOps:
    """CompiledOps of a model without ``compile``: prepare, then ``compile_op`` per op when it has one."""
    prepare = getattr(model, "prepare", None)
    compile_op = getattr(model, "compile_op", None)
    ops = []
    kinds: list[int] = []
    a1: list[int] = []
    a2: list[int] = []
    for op in operations:
        if prepare is not None:
            op = prepare(op)
            if op is None:
                continue
        compiled = compile_op(op, intern) if compile_op is not None else None
        kind, x, y = compiled if compiled is not None else (CALLBACK, -1, 0)
        ops.append(op)
        kinds.append(kind)
        a1.append(x)
        a2.append(y)
    return CompiledOps(ops, kinds, a1, a2)


def _string_states(states: list[Any], kinds: list[int], a1: list[int], a2: list[int]) -> list[bytes | None] | None:
    """The UTF-8 bytes of every value when every state the ops can make is a string (the compiled search
    then appends natively); else None, and the APPEND ops become CALLBACK ops (the model steps them)."""
    can_be_state = [states[0]] + [states[a1[i]] for i, k in enumerate(kinds) if k in (WRITE, APPEND)] + \
        [states[a2[i]] for i, k in enumerate(kinds) if k == CAS]
    if all(type(v) is str for v in can_be_state):
        return [v.encode("utf-8", "surrogatepass") if type(v) is str else None for v in states]
    for i, k in enumerate(kinds):
        if k == APPEND:
            kinds[i] = CALLBACK  # a1 stays the appended value's id: identical appends share a class
    return None


class _States:
    """State ids to values: the ones Python interned, then the strings the compiled search made."""

    def __init__(self, known: list[Any], search: Any) -> None:
        self._known = known
        self._search = search

    def __getitem__(self, sid: int) -> Any:
        return self._known[sid] if sid < len(self._known) else self._search.string(sid)

    def __len__(self) -> int:
        return max(len(self._known), self._search.string_ids)


def _classify_callbacks(ops: list[Operation], kinds: list[int], a1: list[int], a2: list[int], model: Any) -> None:
    """A CALLBACK op whose a1 is -1 gets its identity class (pruning 2) and the flags the model's
    read_only and overwrites give it."""
    read_only = getattr(model, "read_only", None)
    overwrites = getattr(model, "overwrites", None)
    classes: dict[Any, int] = {}
    for i, kind in enumerate(kinds):
        if kind != CALLBACK or a1[i] >= 0:
            continue
        op = ops[i]
        completion = op.completion
        a1[i] = classes.setdefault(identity(op, completion is not None and completion.type == "ok"), len(classes))
        a2[i] = ((READ_ONLY if read_only is not None and read_only(op) else 0)
                 | (OVERWRITES if overwrites is not None and overwrites(op) else 0))


assert (_wgl.CALLBACK, _wgl.READ, _wgl.WRITE, _wgl.CAS, _wgl.ACQUIRE, _wgl.RELEASE, _wgl.APPEND) == \
    (CALLBACK, READ, WRITE, CAS, ACQUIRE, RELEASE, APPEND)
