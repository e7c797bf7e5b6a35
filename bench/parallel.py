"""Benchmark: how many runs fit side by side on this machine (`splitbrain test-all --parallel K`).

The same plan (one test: the Raft store, register workload, partitions, 3 local nodes, ``--time-limit``
seconds, seeds 1..``--runs``) is run with K = 1, 2, 3, 4 runs at a time, ``--rounds`` times each, K
interleaved round by round so the machine's other load falls on every K alike. The table shows per K
the median wall time of the whole plan and its ratio to K = 1 measured in the same process (below 1:
faster), runs per minute, and what the runs themselves saw (medians over every run of every round):
seconds per run (start to checked), client ops/s during the run, the share of ops that were
indeterminate (info: a client timed out; rises when the machine is too busy for the nodes to answer
within --client-timeout), and how many runs were valid (all should be: the store is correct). A K past
the one where wall time stops falling, or where info rises, does not fit.

    python bench/parallel.py [--runs 6] [--rounds 3] [--time-limit 4] [--k 1,2,3,4]

Needs root (local nodes). Every run's folder goes to a scratch directory, removed at the end unless a
run was not valid (each such run is named as it ends, with its verdict and reason).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from splitbrain import Plan, PlanTest, run_plan


def one_plan(store: Path, k: int, runs: int, time_limit: float) -> tuple[float, list[dict]]:
    plan = Plan(f"bench-k{k}", [PlanTest("raft-partition", nemesis="partition", nodes=3, time_limit=time_limit,
                                         nemesis_interval=1.0, recovery=1.0, seeds=list(range(1, runs + 1)))])
    started = time.monotonic()
    result = run_plan(plan, parallel=k, store=str(store), out=io.StringIO())
    wall = time.monotonic() - started
    rows = []
    for record in result.all_records():
        results = json.loads((Path(record.run_dir) / "results.json").read_text())
        stats = results.get("stats") or {}
        if results.get("valid") is not True:  # the store is correct: say what this one saw, keep its folder
            reason = (results.get("explanation") or record.error or "").strip().splitlines()[:1]
            print(f"  K={k} seed {record.seed}: {results.get('valid')} {reason} {record.run_dir}", flush=True)
        rows.append({"seconds": record.duration_s, "valid": results.get("valid") is True,
                     "ops_per_s": stats.get("count", 0) / time_limit,
                     "info_share": stats.get("info_count", 0) / max(1, stats.get("count", 0))})
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=4.0)
    parser.add_argument("--k", default="1,2,3,4")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="splitbrain-bench-parallel-"))
    walls: dict[int, list[float]] = {k: [] for k in ks}
    runs: dict[int, list[dict]] = {k: [] for k in ks}
    try:
        for round_ in range(args.rounds):
            for k in ks:
                wall, rows = one_plan(scratch / f"r{round_}", k, args.runs, args.time_limit)
                walls[k].append(wall)
                runs[k] += rows
                print(f"  round {round_ + 1} K={k}: {wall:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        if all(r["valid"] for rows in runs.values() for r in rows):
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"  kept {scratch}: not every run was valid")
    base = statistics.median(walls[ks[0]])
    print(f"\n{args.runs} runs of {args.time_limit:g} s (raft register, partitions, 3 local nodes), "
          f"median of {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'K':>3} {'wall s':>8} {'vs K=' + str(ks[0]):>8} {'runs/min':>9} {'s/run':>7} {'ops/s':>7} "
          f"{'info':>6} {'valid':>7}")
    for k in ks:
        wall = statistics.median(walls[k])
        rows = runs[k]
        print(f"{k:>3} {wall:>8.1f} {wall / base:>8.2f} {60 * args.runs / wall:>9.1f} "
              f"{statistics.median(r['seconds'] for r in rows):>7.1f} "
              f"{statistics.median(r['ops_per_s'] for r in rows):>7.1f} "
              f"{statistics.median(r['info_share'] for r in rows):>6.1%} "
              f"{sum(r['valid'] for r in rows):>3}/{len(rows):<3}")


if __name__ == "__main__":
    main()
