"""The compiled search agrees with the pure-Python reference on every generated history, and every
linearization it reports is one: replayed through the model, in real-time order."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from splitbrain.checkers import linearizable
from splitbrain.checkers.linearizable import check_linearizable, completed_or_pending, prepared_operations
from splitbrain.checkers.models import KeyValue, Register
from splitbrain.checkers.wgl import PartitionOutcome, PythonSearch
from splitbrain.histories.history import History, Operation
from splitbrain.histories.op import Op

from tests.unit.linearizability_gen import MODELS, random_history

wgl_native = pytest.importorskip("splitbrain.checkers.wgl_native",
                                 reason="the compiled search was not built (needs gcc and python3-dev)")

def parts(history: History, model: Any) -> list[tuple[History, Any]]:
    if not hasattr(model, "partition"):
        return [(history, model)]
    return [(p, model.submodel(p) if hasattr(model, "submodel") else model) for p in model.partition(history)]


# Enough steps for every generated history the fixed examples produce; a history past it is skipped
# (by assume) instead of hanging the suite in the exponential worst case of the reference.
STEP_BUDGET = 2_000_000


def decided(search: Any) -> PartitionOutcome:
    outcome = search.run(STEP_BUDGET)
    assume(outcome is not None)
    return outcome


def assert_is_linearization(ops: list[Operation], order: tuple[int, ...], model: Any) -> None:
    """``order`` places every completed op once, respects real time, and every step is legal."""
    placed = set(order)
    assert len(placed) == len(order)
    assert {i for i, op in enumerate(ops) if op.type == "ok"} <= placed
    position = {i: k for k, i in enumerate(order)}
    for i in order:
        for j in order:
            if ops[j].type == "ok" and ops[j].ret < ops[i].call:  # j completed before i was invoked
                assert position[j] < position[i], f"{ops[j]} must come before {ops[i]}"
    state = model.init()
    for i in order:
        legal, state = model.step(state, ops[i])
        assert legal, f"{ops[i]} is not legal in {state!r}"


def compare(history: History, model_factory: Any) -> None:
    model = model_factory()
    for part, part_model in parts(history, model):
        reference = decided(PythonSearch(prepared_operations(part, part_model), part_model))
        native = decided(wgl_native.NativeSearch(completed_or_pending(part), part_model))
        assert native.valid is reference.valid
        assert [o.call for o in native.ops] == [o.call for o in reference.ops]  # the same ops prepared
        if native.valid:
            assert_is_linearization(native.ops, native.order, part_model)
        else:
            assert native.failure is not None and native.failure.ends
            assert all(0 <= blocked < len(native.ops) for _, _, blocked in native.failure.ends)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=300, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 40), n_procs=st.integers(1, 6),
       p_corrupt=st.sampled_from([0.0, 0.05, 0.2]), p_info=st.sampled_from([0.0, 0.15, 0.5]))
def test_native_agrees_with_the_reference(name: str, seed: int, n_ops: int, n_procs: int, p_corrupt: float,
                                          p_info: float) -> None:
    model = MODELS[name]()
    h = random_history(model, random.Random(seed), n_ops=n_ops, n_procs=n_procs, p_corrupt=p_corrupt,
                       p_info=p_info, keys="abc" if name == "kv" else "")
    compare(h, MODELS[name])


@pytest.mark.parametrize("name", ["register", "cas-register", "kv", "mutex"])
@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(60, 200), p_corrupt=st.sampled_from([0.0, 0.01]))
def test_native_agrees_on_longer_histories(name: str, seed: int, n_ops: int, p_corrupt: float) -> None:
    model = MODELS[name]()
    h = random_history(model, random.Random(seed), n_ops=n_ops, n_procs=5, p_corrupt=p_corrupt, p_info=0.1,
                       keys="ab" if name == "kv" else "")
    compare(h, MODELS[name])


def test_the_same_explanation_from_both_engines() -> None:
    h = History(Op(index=i, type=t, process=p, f=f, value=v) for i, (t, p, f, v) in enumerate([
        ("invoke", 0, "write", 1), ("ok", 0, "write", 1), ("invoke", 1, "write", 2), ("ok", 1, "write", 2),
        ("invoke", 2, "read", None), ("ok", 2, "read", 1)]))
    native = check_linearizable(h, Register(None, cas=False), engine="native")
    python = check_linearizable(h, Register(None, cas=False), engine="python")
    assert native.valid is python.valid is False
    assert native.explanation == python.explanation
    assert native.details["failure"] == python.details["failure"]


def _hard_history(n: int) -> History:
    """n concurrent writes, then a read of a value nobody wrote: invalid only after trying every order."""
    events = [("invoke", p, "write", p) for p in range(n)] + [("ok", p, "write", p) for p in range(n)]
    events += [("invoke", n, "read", None), ("ok", n, "read", 999)]
    return History(Op(index=i, type=t, process=p, f=f, value=v) for i, (t, p, f, v) in enumerate(events))


@pytest.mark.parametrize("engine", ["native", "python"])
def test_memory_budget_gives_unknown_with_its_cause(engine: str) -> None:
    r = check_linearizable(_hard_history(16), Register(None, cas=False), max_memory=1 << 20, engine=engine)
    assert r.valid == "unknown"
    assert "memory bound" in r.details["cause"]


class _Endless:
    """A partition whose search never decides: each slice it is given just costs steps."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []
        self.steps = self.configs = self.memory = 0

    def run(self, budget: int) -> None:
        self.steps += budget


class _InvalidAfter(_Endless):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.needed = steps

    def run(self, budget: int) -> PartitionOutcome | None:
        self.steps += budget
        return PartitionOutcome(False, [], 0, []) if self.steps >= self.needed else None


def test_an_invalid_partition_decides_while_a_hard_one_is_still_searched() -> None:
    """Partitions share the work in rounds of doubling budgets: a hard partition before an invalid one
    gets about as many steps as the invalid one needed, not all it would need."""
    hard, bad = _Endless(), _InvalidAfter(100_000)
    outcomes: list[PartitionOutcome | None] = [None, None]
    linearizable._decide([lambda: hard, lambda: bad], outcomes, "native", None, 1 << 30)
    assert outcomes[1] is not None and outcomes[1].valid is False
    assert outcomes[0] is None  # never decided: the invalid one decided the verdict
    assert hard.steps <= 2 * bad.steps


def test_partitions_over_the_memory_budget_stop_the_largest_first() -> None:
    big, small = _Endless(), _InvalidAfter(10**9)
    big.memory, small.memory = 900, 200
    outcomes: list[PartitionOutcome | None] = [None, None]
    linearizable._decide([lambda: big, lambda: small], outcomes, "native", None, 1000)
    assert outcomes[0] is not None and outcomes[0].valid == "unknown" and "memory bound" in outcomes[0].cause


def _ops(*events: tuple) -> History:
    return History(Op(index=i, type=t, process=p, f=f, value=v, key=k) for i, (t, p, f, v, k) in enumerate(events))


@pytest.mark.parametrize(("seen", "expected"), [([1, 2], True), ([1], True), ([2, 1], False), ([2], False)])
def test_appends_to_lists_are_stepped_by_the_model(seen: list[int], expected: bool) -> None:
    """A register whose appended values are not strings holds a tuple: the compiled search leaves those
    appends to the model's step, and agrees with the reference."""
    h = _ops(("invoke", 0, "append", 1, "k"), ("ok", 0, "append", 1, "k"),
             ("invoke", 1, "append", 2, "k"), ("invoke", 2, "read", None, "k"), ("ok", 1, "append", 2, "k"),
             ("ok", 2, "read", seen, "k"))
    assert check_linearizable(h, KeyValue(None), engine="native").valid is expected
    assert check_linearizable(h, KeyValue(None), engine="python").valid is expected


def test_an_append_to_a_number_is_the_same_error_in_both_engines() -> None:
    h = _ops(("invoke", 0, "write", 5, "k"), ("ok", 0, "write", 5, "k"),
             ("invoke", 0, "append", "x", "k"), ("ok", 0, "append", "x", "k"))
    for engine in ("native", "python"):
        with pytest.raises(ValueError, match="cannot append"):
            check_linearizable(h, KeyValue(""), engine=engine)


_ODD_VALUES = [0, 1, 2, None, True, 1.0, 2.5, "a", "", [1, 2], (1, 2), {"x": [1]}, [[0]], -7]


def _odd_history(rng: random.Random, n: int, fs: list[str]) -> History:
    """Register ops with every kind of value, failed and indeterminate ones, reads of nil, odd fs."""
    ops, index, open_ = [], rng.choice([0, 5, 2**31 + 3]), {}
    for _ in range(2 * n):
        p = rng.randrange(4)
        if p in open_:
            f, v = open_.pop(p)
            t = rng.choice(["ok", "ok", "ok", "fail", "info"])
            result = rng.choice(_ODD_VALUES) if f == "read" else v
            ops.append(Op(index, t, p, f, result))
        else:
            f = rng.choice(fs) if rng.random() > 0.01 else "boom"
            v = None if f in ("read", "get") else [rng.choice(_ODD_VALUES), rng.choice(_ODD_VALUES)] \
                if f == "cas" and rng.random() < 0.95 else rng.choice(_ODD_VALUES)
            open_[p] = (f, v)
            ops.append(Op(index, "invoke", p, f, v))
        index += 2**31 if rng.random() < 0.003 else rng.choice([1, 1, 3])
    return History(ops)


def _interner(states: list[Any], sid_of: dict[Any, int]) -> Any:
    def intern(v: Any) -> int:
        if v not in sid_of:
            sid_of[v] = len(states)
            states.append(v)
        return sid_of[v]

    return intern


def _compiled_both_ways(history: History, model: Any) -> tuple[Any, Any]:
    """(what _wgl.register_ops gives, what the model's Python compile gives): each the compiled ops and the
    values their ids stand for, or the exception it raised."""
    from splitbrain.checkers import _wgl
    from splitbrain.histories.history import hashable

    def with_values(compiled: Any, states: list[Any]) -> Any:
        ops, kinds, a1, a2, calls, rets = compiled
        return [o.call for o in ops], kinds, [states[x] for x in a1], [states[y] if k == 3 else y for k, y in
                                                                      zip(kinds, a2, strict=True)], calls, rets

    out = []
    for native in (True, False):
        states: list[Any] = [model.init()]
        sid_of = {states[0]: 0}

        intern = _interner(states, sid_of)
        try:
            if native:
                compiled = _wgl.register_ops(history.operations(), *model.native_kinds(), sid_of, states, hashable)
                if compiled is None:
                    assert states == [model.init()] and list(sid_of) == [model.init()]  # nothing left interned
                    out.append(None)
                    continue
            else:
                compiled = wgl_native._compiled_in_python(history.operations(), model, intern)
            out.append(with_values(compiled, states))
        except Exception as e:  # noqa: BLE001 - the same error either way
            out.append((type(e), str(e)))
    return out[0], out[1]


@pytest.mark.parametrize("model", [Register(None), Register(0), Register(None, cas=False),
                                   Register(None, nil_reads="unknown"), KeyValue("")], ids=repr)
def test_the_compiled_prepare_gives_the_python_compile_or_leaves_it_to_it(model: Any) -> None:
    """_wgl.register_ops drops, kinds and interns ops exactly as Register.compile after dropping failed
    ops (values compared, not ids); where an op needs the model's own words (an unknown f, a cas without
    [old, new], positions out of range) it gives None and interns nothing."""
    rng = random.Random(11)
    seen = {"same": 0, "left to Python": 0}
    for _ in range(400):
        h = _odd_history(rng, rng.randint(1, 30), sorted(model.native_kinds()[0]))
        native, python = _compiled_both_ways(h, model)
        if native is None:
            seen["left to Python"] += 1
        else:
            assert native == python
            seen["same"] += 1
    assert seen["same"] > 60 and seen["left to Python"] > 10, seen
