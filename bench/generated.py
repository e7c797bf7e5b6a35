"""Large cas-register histories for the benchmarks: a real register driven by concurrent processes.

``processes`` processes (5 by default: about 3 ops in flight at a time; Porcupine needs more than 5 GiB
for 100k ops with 10) each invoke an op, the op takes effect at a random moment before it completes (so
the history is linearizable), and the process invokes its next op after a random pause. Half the ops are reads, a
quarter writes, a quarter compare-and-sets, over values 0-4 (Jepsen's cas-register workload); a cas whose
old value does not match fails. With ``info`` > 0 that share of writes and cas complete as ``info``
(they took effect or not, the client cannot say). ``invalid=True`` changes one read in the middle of the
history to a value nobody wrote, so the search must explore every order up to it.
"""

from __future__ import annotations

import heapq
import random

from splitbrain.histories.history import History
from splitbrain.histories.op import Op

CORRUPT_VALUE = 99


def cas_register_history(n_ops: int, *, seed: int = 1, processes: int = 5, info: float = 0.0,
                         invalid: bool = False) -> History:
    rng = random.Random(seed)
    events: list[tuple[float, int, int, str, str, object]] = []  # (time, order, process, type, f, value)
    order = 0
    effects: list[tuple[float, int]] = []  # (effect time, op number)
    ops: list[dict] = []
    clock = [rng.random() for _ in range(processes)]
    for k in range(n_ops):
        p = min(range(processes), key=clock.__getitem__)
        start = clock[p]
        duration = rng.expovariate(1.0)
        r = rng.random()
        f, arg = ("read", None) if r < 0.5 else ("write", rng.randrange(5)) if r < 0.75 else \
            ("cas", [rng.randrange(5), rng.randrange(5)])
        ops.append({"p": p, "f": f, "arg": arg, "start": start, "end": start + duration,
                    "info": f != "read" and rng.random() < info})
        effects.append((start + rng.random() * duration, k))
        clock[p] = start + duration + rng.expovariate(2.0)
    state = None
    heapq.heapify(effects)
    while effects:
        _, k = heapq.heappop(effects)
        op = ops[k]
        if op["info"] and rng.random() < 0.5:
            op["type"], op["result"] = "info", op["arg"]  # never took effect
            continue
        if op["f"] == "read":
            op["type"], op["result"] = "ok", state
        elif op["f"] == "write":
            state = op["arg"]
            op["type"], op["result"] = "ok", op["arg"]
        elif state == op["arg"][0]:
            state = op["arg"][1]
            op["type"], op["result"] = "ok", op["arg"]
        else:
            op["type"], op["result"] = "fail", op["arg"]
        if op["info"]:
            op["type"] = "info"
    if invalid:
        reads = [k for k, op in enumerate(ops) if op["f"] == "read"]
        ops[reads[len(reads) // 2]]["result"] = CORRUPT_VALUE
    for op in ops:
        events.append((op["start"], order, op["p"], "invoke", op["f"], op["arg"]))
        order += 1
        events.append((op["end"], order, op["p"], op["type"], op["f"], op["result"]))
        order += 1
    events.sort()
    return History(Op(index=i, type=t, process=p, f=f, value=v)  # type: ignore[arg-type]
                   for i, (_, _, p, t, f, v) in enumerate(events))
