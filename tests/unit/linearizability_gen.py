"""Random concurrent histories for the models, and a brute-force linearizability oracle.

The generator runs real processes against a real sequential object: each op takes effect at a random
moment between its invocation and completion (so the history is linearizable), then optionally corrupts
some results so that many histories are not. The oracle tries every order, with no pruning at all.
"""

from __future__ import annotations

import random
from typing import Any

from splitbrain.checkers.linearizable import prepared_operations
from splitbrain.checkers.models import KeyValue, MultiRegister, Mutex, Queue, Register, SetModel
from splitbrain.histories.history import History, Operation
from splitbrain.histories.op import Op

# A fresh model per name: every model the checkers know, as the property tests generate for them.
MODELS = {
    "register": lambda: Register(None, cas=False),
    "cas-register": lambda: Register(0, cas=True),
    "kv": lambda: KeyValue(""),
    "multi-register": lambda: MultiRegister({"x": 0, "y": 0}),
    "mutex": Mutex,
    "set": SetModel,
    "queue": Queue,
}



def _register_op(rng: random.Random, cas: bool, append: bool = False) -> tuple[str, Any]:
    fs = ["read", "write"] + (["cas"] if cas else []) + (["append"] if append else [])
    f = rng.choice(fs)
    if f == "read":
        return f, None
    if f == "cas":
        return f, [rng.randrange(3), rng.randrange(3)]
    if f == "append":
        return f, rng.choice("abc")
    return f, rng.randrange(3)


def random_op(model: Any, rng: random.Random) -> tuple[str, Any]:
    if isinstance(model, KeyValue):  # string values, as Porcupine's kv
        f = rng.choice(["read", "write", "cas", "append"])
        return f, {"read": None, "write": rng.choice("ab"), "append": rng.choice("ab"),
                   "cas": [rng.choice(["", "a", "b"]), rng.choice("ab")]}[f]
    if isinstance(model, Register):
        return _register_op(rng, cas=model.cas)
    if isinstance(model, MultiRegister):
        micro = [[rng.choice(["read", "write"]), rng.choice("xy"), None] for _ in range(rng.randint(1, 2))]
        for m in micro:
            if m[0] == "write":
                m[2] = rng.randrange(3)
        return "txn", micro
    if isinstance(model, Mutex):
        return rng.choice(["acquire", "release"]), {"lock": "l", "owner": rng.choice("pq")}
    if isinstance(model, SetModel):
        return (("add", rng.randrange(4)) if rng.random() < 0.6 else ("read", None))
    if isinstance(model, Queue):
        return (("enqueue", rng.randrange(4)) if rng.random() < 0.5 else ("dequeue", None))
    raise TypeError(model)


def apply_real(model: Any, state: Any, f: str, value: Any, rng: random.Random) -> tuple[bool, Any, Any]:
    """Run one op on the real object: (it succeeded, its result value, the new state)."""
    if isinstance(model, Register):
        if f == "read":
            return True, state, state
        if f == "write":
            return True, value, value
        if f == "append":
            new = (state or "") + value
            return True, value, new
        if f == "cas":
            return (True, value, value[1]) if state == value[0] else (False, value, state)
    if isinstance(model, MultiRegister):
        regs = dict(state)
        out = []
        for mf, k, v in value:
            if mf == "read":
                out.append([mf, k, regs.get(k)])
            else:
                regs[k] = v
                out.append([mf, k, v])
        return True, out, tuple(sorted(regs.items()))
    if isinstance(model, Mutex):
        if f == "acquire":
            return (True, value, value["owner"]) if state is None else (False, value, state)
        return (True, value, None) if state == value["owner"] else (False, value, state)
    if isinstance(model, SetModel):
        if f == "add":
            return True, value, state | {value}
        return True, sorted(state), state
    if isinstance(model, Queue):
        if f == "enqueue":
            return True, value, state + (value,)
        return True, (state[0] if state else None), state[1:]
    raise TypeError(model)


def corrupt(model: Any, f: str, result: Any, rng: random.Random) -> Any:
    if f not in ("read", "dequeue", "txn"):
        return result  # only what an op observed can be wrong; an argument cannot
    if isinstance(model, MultiRegister):
        return [[m[0], m[1], rng.randrange(3)] if m[0] == "read" else m for m in result]
    if isinstance(model, SetModel):
        return sorted(set(result) ^ {rng.randrange(4)})
    if isinstance(model, Queue):
        return rng.choice([None, rng.randrange(4)])
    if isinstance(model, KeyValue):
        return rng.choice(["", "a", "ab", "b", "ba"])
    return rng.choice([None, 0, 1, 2])


def random_history(model: Any, rng: random.Random, n_ops: int = 6, n_procs: int = 3,
                   p_corrupt: float = 0.2, p_info: float = 0.15, keys: str = "") -> History:
    """A concurrent history of ``n_ops`` operations; with p_corrupt=0 it is linearizable."""
    state = model.init() if not isinstance(model, KeyValue) else {}
    ops: list[Op] = []
    pending: dict[int, dict[str, Any]] = {}
    next_proc = list(range(n_procs))
    started = 0

    def emit(**kw: Any) -> None:
        ops.append(Op(index=len(ops), **kw))

    crash_at_end = rng.random() < 0.2  # the last pending ops never complete: crashed clients
    while started < n_ops or (pending and not crash_at_end):
        choices = []
        idle = [i for i in range(n_procs) if i not in pending]
        if started < n_ops and idle:
            choices.append("invoke")
        if any(not p["applied"] for p in pending.values()):
            choices.append("apply")
        if any(p["applied"] for p in pending.values()):
            choices.append("complete")
        action = rng.choice(choices)
        if action == "invoke":
            slot = rng.choice(idle)
            f, value = random_op(model, rng)
            key = rng.choice(keys) if keys else None
            proc = next_proc[slot]
            emit(type="invoke", process=proc, f=f, value=None if f in ("read", "dequeue") else value, key=key)
            pending[slot] = {"f": f, "value": value, "key": key, "proc": proc, "applied": False}
            started += 1
        elif action == "apply":
            slot = rng.choice([s for s, p in pending.items() if not p["applied"]])
            p = pending[slot]
            kstate = state.get(p["key"], model.init()) if isinstance(model, KeyValue) else state
            happened = rng.random() > 0.1 or p["f"] in ("read", "dequeue")
            if happened:
                success, result, new = apply_real(model, kstate, p["f"], p["value"], rng)
            else:
                success, result, new = False, p["value"], kstate
            if isinstance(model, KeyValue):
                state[p["key"]] = new
            else:
                state = new
            p.update(applied=True, success=success, result=result)
        else:
            slot = rng.choice([s for s, p in pending.items() if p["applied"]])
            p = pending.pop(slot)
            r = rng.random()
            if r < p_info:
                emit(type="info", process=p["proc"], f=p["f"], value=p["value"], key=p["key"])
                next_proc[slot] += n_procs
                continue
            result = p["result"]
            if rng.random() < p_corrupt:
                result = corrupt(model, p["f"], result, rng)
            typ = "ok" if p["success"] else "fail"
            if typ == "fail" and rng.random() < p_corrupt:
                typ = "ok"  # claims success for an op that could not succeed (a lock granted twice)
            emit(type=typ, process=p["proc"], f=p["f"], value=result, key=p["key"])
    return History(ops)


def brute_force_linearizable(history: History, model: Any) -> bool:
    """Every order of the ok ops plus any subset of the indeterminate ones; no memo, no pruning."""
    if hasattr(model, "partition"):
        parts = model.partition(history)
        return all(brute_force_linearizable_part(p, model.submodel(p) if hasattr(model, "submodel") else model)
                   for p in parts)
    return brute_force_linearizable_part(history, model)


def brute_force_linearizable_part(history: History, model: Any) -> bool:
    ops: list[Operation] = prepared_operations(history, model)

    def must_precede(a: Operation, b: Operation) -> bool:
        return a.type == "ok" and a.ret < b.call  # type: ignore[operator]

    def go(state: Any, remaining: list[Operation]) -> bool:
        if all(o.type != "ok" for o in remaining):
            return True
        for x in remaining:
            if any(must_precede(y, x) for y in remaining if y is not x):
                continue
            legal, new = model.step(state, x)
            if legal and go(new, [o for o in remaining if o is not x]):
                return True
        return False

    return go(model.init(), ops)
