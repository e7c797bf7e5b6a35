"""The compiled search (checkers/_wgl.c) behind the interface of wgl.PythonSearch.

Each op becomes a few integers: its kind and arguments when the model can say them (``compile_op``: the
register family, whose steps the C code computes itself), else the kind CALLBACK and its identity class,
stepped by the model in Python once per (state, op) pair. Values and states share one table of ids, so
a read of v is legal in state s exactly when id(v) == s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from splitbrain.checkers import _wgl  # ImportError when the extension was not built: wgl.PythonSearch then
from splitbrain.checkers.model import (
    ACQUIRE,
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
from splitbrain.histories.history import Operation

_INT32 = 1 << 31
_NO_CONFIG_LIMIT = -1
DEFAULT_MAX_MEMORY = 1 << 40  # the checker passes its budget; this only guards direct use


class NativeSearch:
    """A resumable search of one partition in C; ``run(budget)`` as wgl.PythonSearch.run.

    ``operations`` are the partition's operations with failed ones already dropped; the model prepares
    them (``compile``, or ``prepare`` and ``compile_op`` one by one): ``self.ops`` holds what is left.
    """

    def __init__(self, operations: Sequence[Operation], model: Any, *, max_configs: int | None = None,
                 max_memory: int | None = None) -> None:
        self.model = model
        self.max_configs = max_configs
        self.max_memory = max_memory or DEFAULT_MAX_MEMORY
        states: list[Any] = [model.init()]
        sid_of: dict[Any, int] = {states[0]: 0}
        self.states = states

        def intern(value: Any) -> int:
            i = sid_of.get(value)
            if i is None:
                i = sid_of[value] = len(states)
                states.append(value)
            return i

        compile_ops = getattr(model, "compile", None)
        compiled = compile_ops(operations, intern) if compile_ops is not None else _compiled(operations, model, intern)
        ops, kinds, a1, a2 = compiled
        self.ops = ops
        classes: dict[Any, int] = {}
        flags_of = None
        for i, kind in enumerate(kinds):
            if kind == CALLBACK:  # its identity class (pruning 2) and what the model says of it
                op = ops[i]
                completion = op.completion
                done = completion is not None and completion.type == "ok"
                a1[i] = classes.setdefault(identity(op, done), len(classes))
                if flags_of is None:
                    flags_of = _flags(model)
                a2[i] = flags_of(op)
        base = ops[0].invoke.index if ops else 0
        calls = [op.invoke.index - base for op in ops]
        rets = [-1 if (c := op.completion) is None or c.type != "ok" else c.index - base for op in ops]
        if ops and max(calls[-1], max(rets)) >= _INT32 - 1:  # sparse indices: their ranks keep the order
            rank = {p: r for r, p in enumerate(sorted(set(calls) | {r for r in rets if r >= 0}))}
            calls = [rank[p] for p in calls]
            rets = [rank[p] if p >= 0 else -1 for p in rets]
        self._callback_state_limit = _INT32 - 2
        self._search = _wgl.Search(kinds, a1, a2, calls, rets, 0, self._next_state, self.max_memory,
                                   _NO_CONFIG_LIMIT if max_configs is None else max_configs, True)
        self._intern = intern

    def _next_state(self, sid: int, i: int) -> int:
        legal, new = self.model.step(self.states[sid], self.ops[i])
        if not legal:
            return -1
        new_id = self._intern(new)
        if new_id >= self._callback_state_limit:
            raise SearchAborted(f"more than {self._callback_state_limit:,} distinct model states")
        return new_id

    @property
    def steps(self) -> int:
        return self._search.steps

    @property
    def configs(self) -> int:
        return self._search.configs

    @property
    def memory(self) -> int:
        return self._search.memory + 64 * len(self.states)

    def run(self, budget: int) -> PartitionOutcome | None:
        status = self._search.run(budget)
        if status == _wgl.RUNNING:
            return None
        s = self._search
        if status == _wgl.VALID:
            return PartitionOutcome(True, self.ops, s.configs, self.states, steps=s.steps, order=s.order())
        if status == _wgl.INVALID:
            depth, ends = s.failure()
            return PartitionOutcome(False, self.ops, s.configs, self.states, Failure(depth, ends), steps=s.steps)
        if status == _wgl.CONFIGS:
            raise SearchAborted(f"memory bound reached ({self.max_configs:,} configurations remembered)")
        raise SearchAborted(f"memory bound reached ({s.configs:,} configurations, {s.memory >> 20:,} MiB of "
                            f"{self.max_memory >> 20:,} MiB)")


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
        kind, x, y = compiled if compiled is not None else (CALLBACK, 0, 0)
        ops.append(op)
        kinds.append(kind)
        a1.append(x)
        a2.append(y)
    return CompiledOps(ops, kinds, a1, a2)


def _flags(model: Any) -> Callable[[Operation], int]:
    read_only = getattr(model, "read_only", None)
    overwrites = getattr(model, "overwrites", None)

    def flags(op: Operation) -> int:
        return ((READ_ONLY if read_only is not None and read_only(op) else 0)
                | (OVERWRITES if overwrites is not None and overwrites(op) else 0))

    return flags


assert (_wgl.CALLBACK, _wgl.READ, _wgl.WRITE, _wgl.CAS, _wgl.ACQUIRE, _wgl.RELEASE) == (CALLBACK, READ, WRITE, CAS, ACQUIRE, RELEASE)
