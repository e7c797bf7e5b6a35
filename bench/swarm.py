"""Benchmark: what the default seed swarm of ``splitbrain sim`` finds, and what it costs.

For each deliberate bug of the store: the first failing seed and how many of seeds 1..--bug-seeds fail
(the swarm's hit rate); for the correct store: seeds 1..--seeds (1,000 by default) all valid, unknowns
and seconds. Then the exact shrinker on each bug's first failing seed: from and to, runs, seconds.

    python bench/swarm.py [--seeds 1000] [--bug-seeds 40] [--jobs 2] [--time-limit 60] [--no-shrink]

Each row is one pass (the simulator is deterministic: a repeat gives the same seeds and verdicts; only
the seconds move, with the machine's load). See the docstring of targets/raft/sim/swarm.py for what the
draws do and why.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from splitbrain.targets.raft.sim.check import check_sim  # noqa: E402
from splitbrain.targets.raft.sim.faults import SWARM_FAULTS  # noqa: E402
from splitbrain.targets.raft.sim.shrink import Case, shrink_case  # noqa: E402
from splitbrain.targets.raft.sim.simulate import (
    SIM_BUGS,  # noqa: E402
    simulate,  # noqa: E402
)
from splitbrain.targets.raft.sim.swarm import SeedOutcome, SwarmJob, run_swarm  # noqa: E402


@dataclass(frozen=True)
class TimedJob(SwarmJob):
    """A swarm job whose checks stop after ``time_limit`` s (a seed past it is unknown, not failing)."""

    time_limit: float = 60.0

    def run(self, seed: int) -> SeedOutcome:
        cfg = self.config(seed)
        result = simulate(seed, nodes=self.nodes, ops=self.ops, bug=self.bug, mix=cfg.mix, workload=cfg.workload)
        verdict = check_sim(result, time_limit=self.time_limit)
        failing = tuple(name for name, part in verdict.details.items()
                        if isinstance(part, dict) and part.get("valid") is not True)
        return SeedOutcome(seed, verdict.valid, failing, verdict.explanation, result.stats["ops"],
                           result.stats["sim_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1000, help="seeds 1..N of the correct store")
    ap.add_argument("--bug-seeds", type=int, default=40, help="seeds 1..N per bug, for the hit rate")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--time-limit", type=float, default=60.0, help="linearizability check limit per seed, s")
    ap.add_argument("--no-shrink", action="store_true")
    args = ap.parse_args()
    pool = tuple(sorted(SWARM_FAULTS))
    print(f"default swarm: 5 nodes, 1,000 ops per seed, fault pool {','.join(pool)}, {args.jobs} jobs, "
          f"check limit {args.time_limit:g} s; one pass per row\n")
    print(f"{'store':<12} {'seeds':>7} {'first fail':>10} {'failing':>8} {'unknown':>8} {'seconds':>8}  failing seeds")
    firsts: dict[str, int] = {}
    for bug in sorted(SIM_BUGS):
        job = TimedJob(bug, pool, 5, 1000, time_limit=args.time_limit)
        report = run_swarm(job, range(1, args.bug_seeds + 1), jobs=args.jobs, run_all=True)
        seeds = [o.seed for o in report.failures]
        first = report.first_failure
        if first is not None:
            firsts[bug] = first.seed
        print(f"{bug:<12} {len(report.outcomes):>7} {first.seed if first else '-':>10} {len(seeds):>8} "
              f"{len(report.unknown):>8} {report.elapsed_s:>8.1f}  {seeds}", flush=True)
    job = TimedJob(None, pool, 5, 1000, time_limit=args.time_limit)
    report = run_swarm(job, range(1, args.seeds + 1), jobs=args.jobs, run_all=True)
    print(f"{'correct':<12} {len(report.outcomes):>7} {'-':>10} {len(report.failures):>8} {len(report.unknown):>8} "
          f"{report.elapsed_s:>8.1f}  {[o.seed for o in report.failures]} unknown: {[o.seed for o in report.unknown]}",
          flush=True)
    if args.no_shrink:
        return
    print(f"\n{'bug':<12} {'seed':>5} {'runs':>5} {'seconds':>8}  from -> to")
    for bug, seed in firsts.items():
        cfg = job.config(seed)
        started = time.perf_counter()
        case = Case.of(simulate(seed, ops=1000, bug=bug, mix=cfg.mix, workload=cfg.workload), 5, bug)
        shrunk = shrink_case(case)
        print(f"{bug:<12} {seed:>5} {shrunk.runs:>5} {time.perf_counter() - started:>8.1f}  "
              f"{case.describe()} -> {shrunk.case.describe()}", flush=True)


if __name__ == "__main__":
    main()
