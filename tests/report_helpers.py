"""Run directories made by hand for the report and serve tests: a register history with partitions and,
when asked, one stale read, checked by the real checkers, written as a run would write it."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from splitbrain.checkers.availability import check_availability
from splitbrain.checkers.basic import check_stats
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import kv
from splitbrain.checkers.result import compose
from splitbrain.harness.interpreter import TIME_ZERO_LOG
from splitbrain.histories.history import History
from splitbrain.histories.jsonl import write_jsonl
from splitbrain.histories.op import Op

MS = 1_000_000
GRUDGE = {"node1": ["node3"], "node2": ["node3"], "node3": ["node1", "node2"]}


def register_history(n_ops: int, *, seed: int = 1, stale_at: int | None = None, processes: int = 5,
                     faults: int = 3) -> History:
    """``n_ops`` register operations on rotating keys, a write-then-read pattern each linearizable, with
    ``faults`` partitions spread over the run; at op ``stale_at`` a read returns a value overwritten
    before it was invoked (what --bug stale-read produces)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    t = 0
    value: dict[int, int] = {}
    spacing = 2 * MS
    fault_every = max(1, n_ops // (faults + 1)) if faults else None
    for i in range(n_ops):
        p = i % processes
        key = i // 60
        t += spacing
        if fault_every and i % fault_every == fault_every // 2 and i // fault_every < faults:
            ops.append(Op(len(ops), "invoke", "nemesis", "start-partition", "primaries", time=t))
            ops.append(Op(len(ops), "info", "nemesis", "start-partition", {"kind": "primaries", "grudge": GRUDGE},
                          time=t + MS // 2))
            end = t + spacing * (fault_every // 3)
            ops.append(Op(len(ops), "invoke", "nemesis", "stop-partition", None, time=end))
            ops.append(Op(len(ops), "info", "nemesis", "stop-partition", "network healed", time=end + MS // 2))
        if rng.random() < 0.4 and i != stale_at:
            v = rng.randrange(5)
            ops.append(Op(len(ops), "invoke", p, "write", v, key, t, node=f"node{p % 3 + 1}"))
            ops.append(Op(len(ops), "ok", p, "write", v, key, t + MS, node=f"node{p % 3 + 1}"))
            value[key] = v
        else:
            seen = value.get(key)
            if stale_at is not None and i == stale_at:
                seen = (seen if seen is not None else 0) + 10  # never written: no order explains it
            ops.append(Op(len(ops), "invoke", p, "read", None, key, t, node=f"node{p % 3 + 1}"))
            ops.append(Op(len(ops), "ok", p, "read", seen, key, t + MS, node=f"node{p % 3 + 1}"))
    ops.sort(key=lambda o: (o.time, o.index))
    ops = [o._replace(index=i) for i, o in enumerate(ops)]
    t = ops[-1].time + MS
    ops.append(Op(len(ops), "invoke", "nemesis", "heal", None, time=t))
    ops.append(Op(len(ops), "info", "nemesis", "heal", "healed", time=t + MS))
    return History(ops)


def checked(history: History) -> dict:
    return compose({"linearizable": check_linearizable(history, kv(None)), "stats": check_stats(history),
                    "availability": check_availability(history)}).to_json()


def make_run(store: Path, name: str = "raft-register", stamp: str = "20260101T000000.000", *, n_ops: int = 300,
             seed: int = 1, stale_at: int | None = None, workload: str = "register", target: str = "raft",
             node_logs: bool = True) -> Path:
    """A run directory as `splitbrain run` leaves it (test.json, history.jsonl, results.json, harness.log,
    nodes/*/server.log with lines around the faults)."""
    run = store / name / stamp
    (run / "nodes").mkdir(parents=True)
    history = register_history(n_ops, seed=seed, stale_at=stale_at)
    test = {"target": target, "workload": workload, "nemesis": ["partition"], "nodes": 3, "seed": seed,
            "remote": "local", "name": name, "bugs": ["stale-read"] if stale_at is not None else []}
    (run / "test.json").write_text(json.dumps(test))
    write_jsonl(history, str(run / "history.jsonl"))
    (run / "results.json").write_text(json.dumps(checked(history), default=str))
    zero = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    (run / "harness.log").write_text(f"2026-01-01 12:00:00,000 INFO splitbrain.interpreter: "
                                     f"{TIME_ZERO_LOG % zero.isoformat()}\n")
    if node_logs:
        for node in ("node1", "node2", "node3"):
            (run / "nodes" / node).mkdir()
            lines = []
            for op in history:
                if not op.is_client and op.type == "info":
                    when = (zero + dt.timedelta(microseconds=op.time // 1000)).astimezone()  # local, as nodes log
                    lines.append(f"{when.replace(tzinfo=None).isoformat(timespec='milliseconds')} INFO "
                                 f"{node}: saw {op.f} at index {op.index}")
            lines.append("2030-01-01T00:00:00.000 INFO long after the run: never excerpted")
            (run / "nodes" / node / "server.log").write_text("\n".join(lines) + "\n")
    return run
