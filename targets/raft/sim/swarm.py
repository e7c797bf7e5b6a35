"""Seed swarms (swarm testing, as FoundationDB runs its simulator): many seeds, each drawing its own fault
mix, step lengths, clock jumps and client timeouts from the seed, so that different seeds stress different
corners instead of every seed averaging over all of them.

    swarm_config(seed, pool, base) -> SwarmConfig(mix, workload)   # what seed S runs with (pure)
    run_swarm(seeds, ...) -> SwarmReport                           # seeds in order, over K processes

Why the draws are what they are (bug lease-read, measured; bench/swarm.py): a deposed leader serves
stale reads only while its wall-clock lease holds, so it needs its clock stepped back and then a cut
that outlasts an election, and a kv client bound to it must read, not wait on a blocked write: with a
hand-written "skew the leader back, isolate it for 1.5 s" schedule, 9 of 10 seeds fail with 100 ms client
timeouts, 4-6 of 10 with 400 ms and none with 1000 ms. The fixed mix of ``splitbrain sim`` (every kind,
400 ms timeouts, 1,000 ops in ~3 simulated s: 5-8 steps) almost never lines these up: 3 of 200 seeds
failed with the first swarm draws. What made it common (8 of seeds 1-40, 3 of seeds 1-20): timeouts
mostly short (100-200 ms), think times up to 300 ms (the same 1,000 ops spread over ~12 simulated s and
~30 steps: the simulator is cheap, the checker's cost follows the ops), a skew always comes with
partitions (a skewed clock shows only once its node is cut off), and clock jumps, cuts and crashes
aimed mostly at the leader.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import FAULTS, Mix
from splitbrain.targets.raft.sim.simulate import simulate
from splitbrain.targets.raft.sim.workload import Workload

TIMEOUTS_MS = (100, 150, 200, 400)
STEP_LO_MS = (20, 50, 100)
STEP_SPAN_MS = (300, 600, 1200)
SKEW_MAX_MS = (2000, 5000, 10000, 30000)
CRASH_ALL_P = (0.05, 0.2, 0.5)
THINK_MAX_MS = (20.0, 60.0, 150.0, 300.0)
CUT_LO_MS = (100, 300, 600)
CUT_SPAN_MS = (300, 1000, 2000)
CONCURRENCY = (5, 8, 12)
LOCK_CLIENTS = (0, 1, 2)


@dataclass(frozen=True)
class SwarmConfig:
    mix: Mix
    workload: Workload

    def describe(self) -> str:
        m, w = self.mix, self.workload
        cut = f", cuts {m.cut_ms[0]}-{m.cut_ms[1]} ms" if m.cut_ms else ""
        return (f"faults {','.join(sorted(m.faults)) or 'none'}, steps {m.step_ms[0]}-{m.step_ms[1]} ms{cut}, "
                f"undo {m.undo_p:.2f}, skew up to {m.skew_max_ms} ms (back {m.skew_back_p:.2f}, drift {m.drift_p:.2f}), "
                f"crash-all {m.crash_all_p:.2f}, isolate {m.isolate_p:.2f}, at the leader {m.leader_p:.2f}, "
                f"{w.concurrency} clients ({w.lock_clients} lock), client timeout {w.timeout_ms} ms, "
                f"think up to {w.think_max_ms:g} ms")


def swarm_config(seed: int, pool: Iterable[str] = FAULTS, base: Workload | None = None, *,
                 concurrency: int | None = None, lock_clients: int | None = None) -> SwarmConfig:
    """The mix seed ``seed`` runs with: each kind of ``pool`` on with probability 1/2 (at least one),
    the rates, timeouts and the number of clients drawn from small menus (``concurrency`` and
    ``lock_clients`` pin those). Its own Random: the run's own draws are untouched."""
    rng = random.Random(f"splitbrain swarm {seed}")
    kinds = sorted(pool)
    chosen = [k for k in kinds if rng.random() < 0.5]
    if kinds and not chosen:
        chosen = [rng.choice(kinds)]
    if "skew" in chosen and "partition" in kinds and "partition" not in chosen:
        chosen.append("partition")  # a skewed clock shows only once its node is cut off (see the docstring)
    lo = rng.choice(STEP_LO_MS)
    mix = Mix(frozenset(chosen), step_ms=(lo, lo + rng.choice(STEP_SPAN_MS)), undo_p=_p(rng, 0.2, 0.7),
              skew_max_ms=rng.choice(SKEW_MAX_MS), skew_back_p=_p(rng, 0.5, 1.0), drift_p=_p(rng, 0.2, 0.9), crash_all_p=rng.choice(CRASH_ALL_P),
              isolate_p=_p(rng, 0.5, 1.0), leader_p=_p(rng, 0.6, 1.0))
    cut_lo = rng.choice(CUT_LO_MS)
    mix = replace(mix, cut_ms=(cut_lo, cut_lo + rng.choice(CUT_SPAN_MS)))
    clients = rng.choice(CONCURRENCY)
    locks = rng.choice(LOCK_CLIENTS)
    clients = concurrency if concurrency is not None else clients
    locks = min(lock_clients if lock_clients is not None else locks, clients if lock_clients is not None else clients - 1)
    workload = replace(base or Workload(), timeout_ms=rng.choice(TIMEOUTS_MS), think_max_ms=rng.choice(THINK_MAX_MS),
                       concurrency=clients, lock_clients=locks)
    return SwarmConfig(mix, workload)


def _p(rng: random.Random, lo: float, hi: float) -> float:
    return round(rng.uniform(lo, hi), 2)


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    valid: Any                    # True | False | "unknown"
    failing: tuple[str, ...]      # the checkers that said invalid (or unknown)
    explanation: str
    ops: int
    sim_ms: int


@dataclass(frozen=True)
class SwarmJob:
    """Everything one seed of the swarm needs (picklable: it crosses to a worker process)."""

    bug: str | None
    pool: tuple[str, ...]
    nodes: int
    ops: int
    base: Workload = Workload()
    concurrency: int | None = None    # None: drawn per seed
    lock_clients: int | None = None

    def config(self, seed: int) -> SwarmConfig:
        return swarm_config(seed, self.pool, self.base, concurrency=self.concurrency, lock_clients=self.lock_clients)

    def run(self, seed: int) -> SeedOutcome:
        cfg = self.config(seed)
        result = simulate(seed, nodes=self.nodes, ops=self.ops, bug=self.bug, mix=cfg.mix, workload=cfg.workload)
        verdict = check_sim(result)
        failing = tuple(name for name, part in verdict.details.items()
                        if isinstance(part, dict) and part.get("valid") is not True)
        return SeedOutcome(seed, verdict.valid, failing, verdict.explanation, result.stats["ops"],
                           result.stats["sim_ms"])


@dataclass
class SwarmReport:
    outcomes: list[SeedOutcome]
    elapsed_s: float

    @property
    def failures(self) -> list[SeedOutcome]:
        return [o for o in self.outcomes if o.valid is False]

    @property
    def unknown(self) -> list[SeedOutcome]:
        return [o for o in self.outcomes if o.valid == "unknown"]

    @property
    def first_failure(self) -> SeedOutcome | None:
        return min(self.failures, key=lambda o: o.seed, default=None)


def run_swarm(job: SwarmJob, seeds: Sequence[int], *, jobs: int = 1, run_all: bool = False,
              on_outcome: Callable[[SeedOutcome], None] | None = None) -> SwarmReport:
    """Run ``seeds`` in order over ``jobs`` processes; stop at the first failure unless ``run_all``.

    Stopping is deterministic whatever ``jobs`` is: seeds are started in order, and after a failure the
    seeds already started still finish, so every seed below the lowest failing one has run and the
    report's first failure is the lowest failing seed of the range.
    """
    started = time.monotonic()
    outcomes: list[SeedOutcome] = []

    def record(o: SeedOutcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    if jobs <= 1:
        for seed in seeds:
            record(job.run(seed))
            if outcomes[-1].valid is False and not run_all:
                break
    else:
        pending = iter(seeds)
        running: set[Future[SeedOutcome]] = set()
        failed = False
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            while True:
                while not failed and len(running) < jobs:
                    seed = next(pending, None)
                    if seed is None:
                        break
                    running.add(pool.submit(job.run, seed))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=lambda f: f.result().seed):
                    record(f.result())
                    failed = failed or (f.result().valid is False and not run_all)
    outcomes.sort(key=lambda o: o.seed)
    if not run_all and any(o.valid is False for o in outcomes):
        first = min(o.seed for o in outcomes if o.valid is False)
        outcomes = [o for o in outcomes if o.seed <= first]
    return SwarmReport(outcomes, time.monotonic() - started)


def parse_seeds(text: str) -> range:
    """``A..B`` (inclusive) or a single seed -> the seeds; ValueError says what was expected."""
    lo, sep, hi = text.partition("..")
    try:
        first = int(lo)
        last = int(hi) if sep else first
    except ValueError:
        raise ValueError(f"--seeds expects A..B (e.g. 1..20), got {text!r}") from None
    if last < first:
        raise ValueError(f"--seeds {text}: the last seed is below the first")
    return range(first, last + 1)


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))
