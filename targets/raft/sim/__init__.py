"""The deterministic simulator of the internal Raft store: N sans-IO cores in one thread, a simulated
clock, a seeded network (drop, delay, reorder, duplicate, partition), crashes that lose what was not
persisted, per-node wall-clock skew, and clients that record a history. The same seed gives the same
history, byte for byte.

    result = simulate(seed, nodes=5, ops=1000, faults=FAULTS, bug=None)   # -> SimResult
    verdict = check_sim(result)         # Raft invariants + linearizable kv + lock safety, composed
    run_sim_cli(seed, nodes, ops, faults, bug, out_dir) -> exit code     # for `splitbrain sim`

A scheduled run (``schedule=[Step(...), ...]``) replaces the random nemesis; ``reproduction`` prints one
as runnable Python.
"""

from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.cli import run_sim_cli
from splitbrain.targets.raft.sim.faults import FAULTS, Step, parse_faults
from splitbrain.targets.raft.sim.simulate import SimResult, reproduction, simulate
from splitbrain.targets.raft.sim.workload import Workload

__all__ = ["FAULTS", "SimResult", "Step", "Workload", "check_sim", "parse_faults", "reproduction", "run_sim_cli",
           "simulate"]
