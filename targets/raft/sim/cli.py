"""``splitbrain sim``: one simulated run, its verdict and its seed; the history goes to out_dir."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from splitbrain.histories.jsonl import write_jsonl
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import SWARM_FAULTS, parse_faults
from splitbrain.targets.raft.sim.simulate import check_sim_bug, simulate
from splitbrain.targets.raft.sim.workload import Workload

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3


def run_sim_cli(seed: int, nodes: int = 5, ops: int = 1000, faults: str | Sequence[str] | None = "all",
                bug: str | None = None, out_dir: str | None = None, *, lock_clients: int = 2,
                concurrency: int = 5, shrink: bool = False, max_runs: int | None = None) -> int:
    """Simulate, check, print verdict and seed; write history.jsonl and results.json to ``out_dir``.

    ``faults``: "all", "none", "partition,crash", or a list of kinds. Exit code: 0 valid, 1 invalid,
    2 unknown, 3 bad options (one-line error on stdout).
    """
    try:
        kinds = parse_faults(faults if faults is None or isinstance(faults, str) else ",".join(faults))
        check_sim_bug(bug)
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
    if shrink and verdict.valid is False:
        _print_shrunk(result, nodes, bug, out_dir, max_runs)
    elif shrink:
        print(f"seed {seed} does not fail: nothing to shrink")
    return {True: EXIT_VALID, False: EXIT_INVALID, "unknown": EXIT_UNKNOWN}[verdict.valid]


def run_swarm_cli(seeds: str, nodes: int = 5, ops: int = 1000, faults: str | None = "all", bug: str | None = None,
                  out_dir: str | None = None, *, jobs: int = 1, run_all: bool = False, shrink: bool = False,
                  max_runs: int | None = None) -> int:
    """``sim --seeds A..B``: a swarm (swarm.py), one line per seed; the first failing seed, the command
    that reproduces it, and with ``shrink`` its shrunk case. Exit 0 all valid, 1 a failure, 2 unknowns."""
    from splitbrain.targets.raft.sim.swarm import SwarmJob, parse_seeds, run_swarm

    try:
        kinds = parse_faults(faults, SWARM_FAULTS)
        seed_range = parse_seeds(seeds)
        check_sim_bug(bug)
        if nodes < 1 or ops < 0 or jobs < 1:
            raise ValueError("need nodes >= 1, ops >= 0 and jobs >= 1")
    except ValueError as e:
        print(f"error: {e}")
        return EXIT_ERROR
    job = SwarmJob(bug, tuple(sorted(kinds)), nodes, ops)
    print(f"splitbrain sim swarm: seeds {seed_range.start}..{seed_range.stop - 1}, {nodes} nodes, {ops} ops, "
          f"fault pool {','.join(sorted(kinds)) or 'none'}, bug {bug or 'none'}, {jobs} jobs")

    def show(o: Any) -> None:
        word = {True: "valid", False: "INVALID", "unknown": "unknown"}[o.valid]
        why = f" ({', '.join(o.failing)})" if o.failing else ""
        print(f"  seed {o.seed}: {word}{why}, {o.ops} ops, {o.sim_ms} ms; {job.config(o.seed).describe()}", flush=True)

    report = run_swarm(job, seed_range, jobs=jobs, run_all=run_all, on_outcome=show)
    first = report.first_failure
    print(f"{len(report.outcomes)} seeds in {report.elapsed_s:.1f} s: {len(report.failures)} invalid, "
          f"{len(report.unknown)} unknown")
    if first is None:
        return EXIT_UNKNOWN if report.unknown else EXIT_VALID
    repro = _swarm_command(first.seed, nodes, ops, kinds, bug)
    print(first.explanation)
    print(f"INVALID: first failing seed {first.seed}; reproduce with: {repro} --out DIR")
    result = simulate(first.seed, nodes=nodes, ops=ops, bug=bug, mix=job.config(first.seed).mix,
                      workload=job.config(first.seed).workload)
    if out_dir is not None:
        _write(out_dir, result.history, {"seed": first.seed, "command": repro, "stats": result.stats})
    if shrink:
        _print_shrunk(result, nodes, bug, out_dir, max_runs)
    return EXIT_INVALID


def _swarm_command(seed: int, nodes: int, ops: int, kinds: frozenset[str], bug: str | None) -> str:
    parts = ["splitbrain sim", f"--seeds {seed}"]
    if nodes != 5:
        parts.append(f"--nodes {nodes}")
    if ops != 1000:
        parts.append(f"--ops {ops}")
    if kinds != frozenset(SWARM_FAULTS):
        parts.append(f"--faults {','.join(sorted(kinds)) or 'none'}")
    if bug:
        parts.append(f"--bug {bug}")
    return " ".join(parts)


def _write(out_dir: str, history: Any, results: dict[str, Any]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    write_jsonl(history, os.path.join(out_dir, "history.jsonl"))
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2, default=str)


def _print_shrunk(result: Any, nodes: int, bug: str | None, out_dir: str | None, max_runs: int | None) -> None:
    """Shrink a failing run (shrink.py) and print its case as runnable Python; its files go to out_dir/shrunk."""
    from splitbrain.targets.raft.sim.shrink import DEFAULT_MAX_RUNS, Case, shrink_case

    print("shrinking (each candidate re-run from the same seed) ...", flush=True)
    shrunk = shrink_case(Case.of(result, nodes, bug), max_runs=max_runs or DEFAULT_MAX_RUNS,
                         on_progress=lambda name, best: print(f"  after {name}: {best.describe()}", flush=True))
    print(shrunk.summary())
    code = shrunk.case.reproduction()
    print("reproduce with this Python:\n" + code)
    if out_dir is not None:
        where = os.path.join(out_dir, "shrunk")
        _write(where, shrunk.result.history, {"seed": shrunk.case.seed, "summary": shrunk.summary(),
                                               "failing": sorted(shrunk.signature), "stats": shrunk.result.stats})
        with open(os.path.join(where, "repro.py"), "w", encoding="utf-8") as fh:
            fh.write(code)
        print(f"shrunk history in {os.path.join(where, 'history.jsonl')}, its reproduction in "
              f"{os.path.join(where, 'repro.py')}")
