"""``splitbrain sim``: one simulated run, its verdict and its seed; the history goes to out_dir."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from splitbrain.histories.jsonl import write_jsonl
from splitbrain.targets.raft.core import BUGS
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import parse_faults
from splitbrain.targets.raft.sim.simulate import simulate
from splitbrain.targets.raft.sim.workload import Workload

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3


def run_sim_cli(seed: int, nodes: int = 5, ops: int = 1000, faults: str | Sequence[str] | None = "all",
                bug: str | None = None, out_dir: str | None = None, *, lock_clients: int = 2,
                concurrency: int = 5) -> int:
    """Simulate, check, print verdict and seed; write history.jsonl and results.json to ``out_dir``.

    ``faults``: "all", "none", "partition,crash", or a list of kinds. Exit code: 0 valid, 1 invalid,
    2 unknown, 3 bad options (one-line error on stdout).
    """
    try:
        kinds = parse_faults(faults if faults is None or isinstance(faults, str) else ",".join(faults))
        if bug is not None and bug not in BUGS:
            raise ValueError(f"unknown bug {bug!r}; expected one of {', '.join(sorted(BUGS))}")
        if nodes < 1 or ops < 0 or not 0 <= lock_clients <= concurrency:
            raise ValueError("need nodes >= 1, ops >= 0 and 0 <= lock clients <= concurrency")
    except ValueError as e:
        print(f"error: {e}")
        return EXIT_ERROR
    print(f"splitbrain sim: seed {seed}, {nodes} nodes, {ops} ops, faults {','.join(sorted(kinds)) or 'none'}, "
          f"bug {bug or 'none'}")
    result = simulate(seed, nodes=nodes, ops=ops, faults=kinds, bug=bug,
                      workload=Workload(concurrency=concurrency, lock_clients=lock_clients))
    verdict = check_sim(result)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        write_jsonl(result.history, os.path.join(out_dir, "history.jsonl"))
        with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as fh:
            json.dump({"seed": seed, "stats": result.stats, **verdict.to_json()}, fh, indent=2, default=str)
    s = result.stats
    print(f"  {s['ops']} ops ({s['ok']} ok, {s['fail']} fail, {s['info']} info) in {s['sim_ms']} simulated ms, "
          f"{s['leaders_elected']} leaders")
    if verdict.explanation:
        print(verdict.explanation)
    word = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}[verdict.valid]
    where = f"; history in {os.path.join(out_dir, 'history.jsonl')}" if out_dir is not None else ""
    print(f"{word} (seed {seed}{where})")
    return {True: EXIT_VALID, False: EXIT_INVALID, "unknown": EXIT_UNKNOWN}[verdict.valid]
