"""One deterministic simulation: a cluster, clients, a nemesis; the same seed gives the same history."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from splitbrain.histories.faults import HEAL
from splitbrain.histories.history import History
from splitbrain.histories.op import NEMESIS
from splitbrain.targets.raft.core import BUGS
from splitbrain.targets.raft.sim.cluster import SimCluster, Timing
from splitbrain.targets.raft.sim.events import EventLoop
from splitbrain.targets.raft.sim.faults import (
    DISK_FAULTS,
    FAULTS,
    Mix,
    Step,
    apply_step,
    heal_everything,
    random_step,
)
from splitbrain.targets.raft.sim.invariants import Violation
from splitbrain.targets.raft.sim.workload import Clients, OpScript, Recorder, Workload, op_script

SETTLE_MS = 2_000          # after the last op: heal everything and let stragglers finish
CHECK_EVERY_MS = 50        # how often log invariants are checked during a run
DEFAULT_TIMING = Timing()
# txn-split splits a transaction in two; the simulated clients issue no transactions, so it cannot show here.
SIM_BUGS = BUGS - {"txn-split"}


def check_sim_bug(bug: str | None) -> None:
    """ValueError with the valid names, for a bug the simulator does not know or cannot show."""
    if bug is None or bug in SIM_BUGS:
        return
    if bug in BUGS:
        raise ValueError(f"bug {bug!r} needs transactions, which the simulator does not run; try it with "
                         f"`splitbrain run --bug {bug} --workload list-append`")
    raise ValueError(f"unknown bug {bug!r}; expected one of {', '.join(sorted(SIM_BUGS))}")


@dataclass
class SimResult:
    seed: int
    history: History
    violations: list[Violation]
    stats: dict[str, Any]
    workload: Workload
    schedule: list[Step] = field(default_factory=list)

    def _split(self, lock: bool) -> History:
        c, n = self.workload.concurrency, self.workload.lock_clients
        keep = [op for op in self.history if op.is_client and ((op.process % c) < n) == lock]
        return History(keep, self.history.source)

    def kv_history(self) -> History:
        return self._split(lock=False)

    def lock_history(self) -> History:
        return self._split(lock=True)

    def script(self) -> OpScript:
        """What every client did: with ``schedule``, it replays this run exactly (shrink.py starts there)."""
        return op_script(self.history, self.workload)


def simulate(seed: int, nodes: int = 5, ops: int = 1000, faults: Sequence[str] | frozenset[str] = FAULTS,
             bug: str | None = None, *, workload: Workload | None = None,
             schedule: Sequence[Step] | None = None, timing: Timing = DEFAULT_TIMING,
             check_every_ms: int = CHECK_EVERY_MS, mix: Mix | None = None,
             script: OpScript | None = None) -> SimResult:
    """Run ``ops`` client operations on a simulated ``nodes``-node cluster.

    Without ``schedule`` a seeded random nemesis injects the kinds in ``faults`` (or draws as ``mix``
    says); with it, the steps run in order (clients keep working throughout) and then the run ends.
    With ``script`` the clients make exactly the script's ops (see OpScript) instead of drawing them: a
    run's own ``schedule`` and ``script()`` replay it exactly. Invariants are checked after every step
    and every ``check_every_ms``; violations are returned, not raised.
    """
    check_sim_bug(bug)
    unknown = set(faults) - set(FAULTS) - set(DISK_FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s) {sorted(unknown)}; expected any of {', '.join(FAULTS + DISK_FAULTS)}")
    mix = mix if mix is not None else Mix(frozenset(faults))
    rng = random.Random(seed)
    loop = EventLoop()
    ids = [f"n{i + 1}" for i in range(nodes)]
    cluster = SimCluster(ids, loop, random.Random(rng.getrandbits(64)),
                         frozenset([bug]) if bug else frozenset(), timing)
    recorder = Recorder(loop)
    w = workload or Workload()
    clients = Clients(cluster, recorder, w, random.Random(rng.getrandbits(64)), budget=ops, script=script)
    nemesis_rng = random.Random(rng.getrandbits(64))  # what the random nemesis does
    resolve_rng = random.Random(rng.getrandbits(64))  # "leader" with no leader: the same draws with a schedule
    done: list[Step] = []

    def check() -> None:
        cluster.check_invariants()

    def periodic_check() -> None:
        check()
        loop.after(check_every_ms * 1000, periodic_check)

    def run_step(step: Step) -> None:
        did = apply_step(cluster, step, resolve_rng)
        recorder.record("info", NEMESIS, step.action, did)
        done.append(step)
        loop.run_until(loop.now_us + step.run_ms * 1000)
        check()

    clients.start()
    loop.after(check_every_ms * 1000, periodic_check)
    if schedule is not None:
        for step in schedule:
            run_step(step)
        clients.budget = clients.invoked  # the schedule is over: no new ops
    else:
        wanted = ops if script is None else min(ops, script.ops)
        while clients.invoked < wanted:
            run_step(random_step(nemesis_rng, mix, cluster))
    heal_everything(cluster)
    recorder.record("info", NEMESIS, HEAL, {})
    deadline = loop.now_us + SETTLE_MS * 1000
    while clients.busy and loop.now_us < deadline:
        loop.run_until(loop.now_us + 50_000)
    check()
    history = History(recorder.ops, source=f"sim seed {seed}")
    return SimResult(seed, history, list(cluster.invariants.violations), _stats(history, loop, cluster), w, done)


def _stats(history: History, loop: EventLoop, cluster: SimCluster) -> dict[str, Any]:
    counts = {"ok": 0, "fail": 0, "info": 0}
    for o in history.operations():
        counts[o.type] = counts.get(o.type, 0) + 1
    return {
        "ops": len(history.operations()),
        **counts,
        "sim_ms": loop.now_ms,
        "terms": max(cluster.invariants.leader_of_term, default=0),
        "leaders_elected": len(cluster.invariants.leader_of_term),
        "committed_entries": len(cluster.invariants.committed),
    }


def reproduction(seed: int, schedule: Sequence[Step], *, nodes: int = 5, bug: str | None = None,
                 workload: Workload | None = None) -> str:
    """Python that replays a scheduled run exactly (printed for a failing hypothesis example)."""
    w = "" if workload is None else f", workload={workload!r}"
    steps = ",\n    ".join(repr(s) for s in schedule)
    return ("from splitbrain.targets.raft.sim.faults import Step\n"
            "from splitbrain.targets.raft.sim.simulate import simulate\n"
            "from splitbrain.targets.raft.sim.workload import Workload\n"
            f"result = simulate({seed}, nodes={nodes}, ops=10**9, bug={bug!r}{w}, schedule=[\n    {steps},\n])\n"
            "print(result.stats, *result.violations, sep='\\n')\n")
