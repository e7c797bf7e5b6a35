"""Synthetic list-append histories with known answers, for tests and benchmarks.

A history comes from a *serial* execution: txn i takes effect at time i, its invocation happens a little
before and its completion a little after, so real-time order never contradicts the serial order, while
neighbouring txns overlap (concurrency). Processes are single-threaded: a process is free again once its
txn completed ok/fail; an indeterminate txn retires its process, as in Jepsen.

Known anomalies are injected as small *patterns* on fresh keys whose txns all overlap in time (so they
add no real-time edges between themselves), each producing exactly the named anomaly.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any

from splitbrain.histories.history import History
from splitbrain.histories.op import Op

Mop = list[Any]


@dataclass
class PlannedTxn:
    """What the generator decided: invocation value, completion value, completion type (None: none)."""

    invoke: list[Mop]
    complete: list[Mop]
    type: str | None  # "ok" | "fail" | "info" | None (never completes)


def pattern(anomaly: str, keys: list[int]) -> list[PlannedTxn]:
    """Txns that exhibit exactly ``anomaly`` on ``keys`` (fresh keys, at least 2), all meant to overlap."""
    x, y = keys[0], keys[1]

    def ok(*mops: Mop) -> PlannedTxn:
        return PlannedTxn([[f, k, None if f == "r" else v] for f, k, v in mops], [list(m) for m in mops], "ok")

    if anomaly == "G0":  # two txns append to x and y in opposite orders
        return [ok(["append", x, 1], ["append", y, 1]), ok(["append", x, 2], ["append", y, 2]),
                ok(["r", x, [1, 2]], ["r", y, [2, 1]])]
    if anomaly == "G1c":  # each reads the other's append
        return [ok(["append", x, 1], ["r", y, [2]]), ok(["append", y, 2], ["r", x, [1]])]
    if anomaly == "G-single":  # read skew: T2 sees T1's y but not T1's x
        return [ok(["append", x, 1], ["append", y, 1]), ok(["r", x, []], ["r", y, [1]])]
    if anomaly == "G2-item":  # write skew
        return [ok(["r", x, []], ["append", y, 1]), ok(["r", y, []], ["append", x, 1])]
    if anomaly == "G1a":  # read an append of a failed txn
        return [PlannedTxn([["append", x, 1]], [["append", x, 1]], "fail"), ok(["r", x, [1]])]
    if anomaly == "G1b":  # read an intermediate state
        return [ok(["append", x, 1], ["append", x, 2]), ok(["r", x, [1]])]
    if anomaly == "internal":  # does not see its own append
        return [ok(["append", x, 1], ["r", x, []])]
    if anomaly == "duplicate-elements":
        return [ok(["append", x, 1]), ok(["r", x, [1, 1]])]
    if anomaly == "incompatible-order":
        return [ok(["append", x, 1]), ok(["append", x, 2]), ok(["append", x, 3]),
                ok(["r", x, [1, 2]]), ok(["r", x, [1, 3]])]
    if anomaly == "garbage-read":
        return [ok(["r", x, [99]])]
    raise ValueError(f"no pattern for {anomaly!r}")


PATTERNS = ("G0", "G1c", "G-single", "G2-item", "G1a", "G1b", "internal", "duplicate-elements",
            "incompatible-order", "garbage-read")


def serial_txns(rng: random.Random, n: int, *, key_count: int = 8, max_writes_per_key: int = 16,
                max_txn_length: int = 4, fail_rate: float = 0.0, info_rate: float = 0.0) -> list[PlannedTxn]:
    """``n`` txns of a serial execution over rotating keys (a key retires after ``max_writes_per_key``
    appends, as in Jepsen, which keeps lists short)."""
    state: dict[int, list[int]] = {}
    active = list(range(key_count))
    next_key = key_count
    writes: dict[int, int] = {}
    txns = []
    for _ in range(n):
        invoke: list[Mop] = []
        complete: list[Mop] = []
        outcome = "ok"
        roll = rng.random()
        if roll < fail_rate:
            outcome = "fail"
        elif roll < fail_rate + info_rate:
            outcome = "info"
        applies = outcome == "ok" or (outcome == "info" and rng.random() < 0.5)
        scratch = {}  # this txn's view: committed state plus its own appends
        for _ in range(rng.randint(1, max_txn_length)):
            k = rng.choice(active)
            view = scratch.setdefault(k, list(state.get(k, ())))
            if rng.random() < 0.5:
                v = writes.get(k, 0) + 1
                writes[k] = v
                view.append(v)
                invoke.append(["append", k, v])
                complete.append(["append", k, v])
                if v >= max_writes_per_key:
                    active[active.index(k)] = next_key
                    next_key += 1
            else:
                invoke.append(["r", k, None])
                complete.append(["r", k, list(view)])
        if applies:
            state.update(scratch)
        if outcome == "info":
            txns.append(PlannedTxn(invoke, invoke, "info" if rng.random() < 0.5 else None))
        elif outcome == "fail":
            txns.append(PlannedTxn(invoke, invoke, "fail"))
        else:
            txns.append(PlannedTxn(invoke, complete, "ok"))
    return txns


def schedule(rng: random.Random, slots: list[list[PlannedTxn]], *, overlap: float = 3.0) -> History:
    """Ops for txns taking effect at slot times 0, 1, 2 ...: each txn of slot i is invoked in
    (i - overlap, i) and completes in (i, i + overlap), so a txn that completed before another was invoked
    is in an earlier slot."""
    events: list[tuple[float, int, int]] = []  # (time, 0 invoke / 1 complete, txn number)
    flat: list[PlannedTxn] = []
    for i, slot in enumerate(slots):
        for t in slot:
            tid = len(flat)
            flat.append(t)
            events.append((i - rng.uniform(0.01, overlap), 0, tid))
            if t.type is not None:
                events.append((i + rng.uniform(0.01, overlap), 1, tid))
    events.sort()
    free: list[int] = []
    next_process = 0
    process_of: dict[int, int] = {}
    ops: list[Op] = []
    for time, is_completion, tid in events:
        t = flat[tid]
        ns = int((time + overlap + 1) * 1_000_000)
        if not is_completion:
            if free:
                p = heapq.heappop(free)
            else:
                p, next_process = next_process, next_process + 1
            process_of[tid] = p
            ops.append(Op(len(ops), "invoke", p, "txn", t.invoke, time=ns))
        else:
            p = process_of[tid]
            assert t.type is not None
            ops.append(Op(len(ops), t.type, p, "txn", t.complete, time=ns))  # type: ignore[arg-type]
            if t.type != "info":
                heapq.heappush(free, p)
    return History(ops)


def list_append_history(seed: int, n: int, *, anomalies: tuple[str, ...] = (), every: int = 1000,
                        **txn_options: Any) -> History:
    """A serial list-append history of about ``n`` txns; when ``anomalies`` is given, one pattern
    (cycling through them) is inserted every ``every`` txns on fresh keys."""
    rng = random.Random(seed)
    txns = serial_txns(rng, n, **txn_options)
    slots: list[list[PlannedTxn]] = []
    fresh = 10**9
    for i, t in enumerate(txns):
        slots.append([t])
        if anomalies and i % every == every // 2:
            name = anomalies[(i // every) % len(anomalies)]
            slots.append(pattern(name, [fresh, fresh + 1]))
            fresh += 2
    return schedule(rng, slots)
