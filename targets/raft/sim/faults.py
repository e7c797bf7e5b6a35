"""Fault schedules as data: a list of ``Step``s, each an action on the simulated cluster followed by a
stretch of simulated time. A schedule prints (``repr``) as Python that rebuilds it, so a failing one is a
runnable reproduction. ``"leader"`` as a target means the node that leads when the step runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from splitbrain.targets.raft.sim.cluster import SimCluster
from splitbrain.targets.raft.sim.network import HEALTHY, LinkConditions

FAULTS = ("partition", "crash", "drop", "delay", "duplicate", "skew")
# Disk faults, named explicitly (not part of "all", whose seeds the tests of the other bugs rely on):
# damaged log entries on stopped nodes, and power cuts that lose what the kernel had not yet written.
DISK_FAULTS = ("corrupt", "power")
# A swarm's "all": every kind, disk faults included (each seed switches each kind on or off by itself).
SWARM_FAULTS = FAULTS + DISK_FAULTS
ACTIONS = ("isolate", "partition", "heal", "crash", "restart", "net", "calm", "skew", "wait", "corrupt",
           "repair", "power")
DRIFT_RATES = (0.1, 0.25, 0.5, 2.0, 4.0)  # wall clock speed of a drifting node
STEP_MS = (100, 600)  # how long a random step lasts: long enough for elections to finish inside a fault


@dataclass(frozen=True)
class Mix:
    """How the random nemesis draws its steps. The defaults are the fixed mix of ``splitbrain sim``; a
    swarm (swarm.py) draws one per seed, so that different seeds stress different corners.

    ``step_ms``: a step lasts [lo, hi) ms; ``undo_p``: how often a step undoes an active fault of its
    kind instead of adding one; ``skew_max_ms``: the largest clock jump; ``skew_back_p``: how often it
    is a jump back; ``drift_p``: how often the clock also drifts after the jump (a slow clock
    stretches a wall-clock lease for as long as it drifts, a jump back only for the size of the jump);
    ``crash_all_p``: how often a crash takes every node down at once (the power failure
    that loses what was not fsync'd); ``isolate_p``: how often a partition cuts off the leader alone
    (else a random cut); ``leader_p``: how often a crash or a skew targets the leader; ``cut_ms``: how
    long the step that starts a partition lasts, when it should differ from ``step_ms`` (a deposed
    leader shows what it does wrong only in a cut that outlasts an election).
    """

    faults: frozenset[str] = field(default_factory=lambda: frozenset(FAULTS))
    step_ms: tuple[int, int] = STEP_MS
    undo_p: float = 0.5
    skew_max_ms: int = 3000
    skew_back_p: float = 0.5
    drift_p: float = 0.5
    crash_all_p: float = 0.2
    isolate_p: float = 0.5
    leader_p: float = 0.6
    cut_ms: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS) - set(DISK_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; expected any of {', '.join(FAULTS + DISK_FAULTS)}")
        if not 0 < self.step_ms[0] < self.step_ms[1]:
            raise ValueError(f"step_ms must be 0 < lo < hi, got {self.step_ms}")

    def __repr__(self) -> str:
        return (f"Mix(faults=frozenset({sorted(self.faults)!r}), step_ms={self.step_ms!r}, undo_p={self.undo_p!r}, "
                f"skew_max_ms={self.skew_max_ms!r}, skew_back_p={self.skew_back_p!r}, drift_p={self.drift_p!r}, crash_all_p={self.crash_all_p!r}, "
                f"isolate_p={self.isolate_p!r}, leader_p={self.leader_p!r}, cut_ms={self.cut_ms!r})")


@dataclass(frozen=True)
class Step:
    """``isolate(node)``, ``partition(group, ...)``, ``heal()``, ``crash(node|"all")``, ``restart(node|"all")``,
    ``net(drop, duplicate, delay_min_ms, delay_max_ms)``, ``calm()``, ``wait()``,
    ``skew(node, offset_ms[, rate])``: the node's wall clock jumps to true time + offset (and runs at
    ``rate`` from then on: 0.5 = half speed); monotonic clocks and ticks are never skewed;
    ``corrupt(node|"all", position)``: the node crashes, the entry at ``position`` (0..1) of its stored
    log is damaged, it starts again (and refuses to, unless bug no-crc); ``repair(node|"all")``: the
    damage taken back, the node started; ``power(node|"all")``: a power cut (a crash that loses the
    kernel's unwritten cache)."""

    action: str
    args: tuple[Any, ...] = ()
    run_ms: int = 100

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown step action {self.action!r}; expected one of {', '.join(ACTIONS)}")

    def __repr__(self) -> str:
        return f"Step({self.action!r}, {self.args!r}, run_ms={self.run_ms})"


def resolve(cluster: SimCluster, target: str, rng: random.Random) -> str:
    if target == "leader":
        return cluster.leader() or rng.choice(list(cluster.nodes))
    if target not in cluster.nodes:
        raise ValueError(f"step names node {target!r}; the cluster has {', '.join(cluster.nodes)}")
    return target


def apply_step(cluster: SimCluster, step: Step, rng: random.Random) -> dict[str, Any]:
    """Do the step's action; returns what was done (recorded as a nemesis op)."""
    a, args = step.action, step.args
    if a == "isolate":
        node = resolve(cluster, args[0], rng)
        cluster.network.partition([[node]])
        return {"isolated": node}
    if a == "partition":
        cluster.network.partition([list(g) for g in args])
        return {"components": cluster.network.components()}
    if a == "heal":
        cluster.network.heal()
        return {}
    if a == "crash":
        targets = list(cluster.nodes) if args[0] == "all" else [resolve(cluster, args[0], rng)]
        for n in targets:
            cluster.crash(n)
        return {"crashed": targets}
    if a == "restart":
        targets = list(cluster.nodes) if args[0] == "all" else [resolve(cluster, args[0], rng)]
        for n in targets:
            cluster.restart(n)
        return {"restarted": targets}
    if a == "net":
        drop, dup, lo, hi = args
        cluster.network.conditions = LinkConditions(drop=drop, duplicate=dup, delay_min_ms=lo, delay_max_ms=hi)
        return {"drop": drop, "duplicate": dup, "delay_ms": [lo, hi]}
    if a == "calm":
        cluster.network.conditions = HEALTHY
        return {}
    if a in ("corrupt", "repair", "power"):
        targets = list(cluster.nodes) if args[0] == "all" else [resolve(cluster, args[0], rng)]
        did: dict[str, Any] = {}
        for n in targets:
            node = cluster.nodes[n]
            if a == "power":
                node.power_cut()
                continue
            cluster.crash(n)
            if a == "corrupt":
                did[n] = node.corrupt(float(args[1]))
            else:
                node.repair()
            cluster.restart(n)
        if a == "power":
            return {"power-cut": targets}
        return {"damaged" if a == "corrupt" else "repaired": did or targets,
                "refused": sorted(n for n in targets if cluster.nodes[n].refused)}
    if a == "skew":
        node = resolve(cluster, args[0], rng)
        rate = float(args[2]) if len(args) > 2 else None
        cluster.nodes[node].set_clock(int(args[1]), rate)
        return {"node": node, "skew_ms": int(args[1]), "rate": cluster.nodes[node].rate}
    return {}


def heal_everything(cluster: SimCluster) -> None:
    cluster.network.heal()
    cluster.network.conditions = HEALTHY
    for node in cluster.nodes.values():
        node.set_clock(0, 1.0)
        node.repair()
    for nid in cluster.nodes:
        cluster.restart(nid)


def random_step(rng: random.Random, mix: Mix, cluster: SimCluster) -> Step:
    """The random nemesis: a fault of an enabled kind, or the undoing of one that is active."""
    faults = mix.faults
    run_ms = rng.randrange(*mix.step_ms)
    if not faults:
        return Step("wait", (), run_ms)
    down = [n for n, node in cluster.nodes.items() if not node.up]
    if len(down) > len(cluster.nodes) // 2 and rng.random() < 0.6:
        return Step("restart", ("all",), run_ms)  # a cluster that stays down tests nothing more
    kind = rng.choice(sorted(faults))
    net = cluster.network
    undo = rng.random() < mix.undo_p
    if kind == "corrupt":
        refused = [n for n, node in cluster.nodes.items() if node.refused]
        if refused and undo:
            return Step("repair", ("all" if rng.random() < 0.5 else rng.choice(refused),), run_ms)
        r = rng.random()
        target = "all" if r < 0.3 else "leader" if r < 0.6 else rng.choice(list(cluster.nodes))
        return Step("corrupt", (target, round(rng.random(), 3)), run_ms)
    if kind == "power":
        if down and undo:
            return Step("restart", ("all",), run_ms)
        return Step("power", ("all" if rng.random() < 0.5 else "leader",), run_ms)
    if kind == "partition":
        if undo and net.components() != [list(cluster.nodes)]:
            return Step("heal", (), run_ms)
        if mix.cut_ms is not None:
            run_ms = rng.randrange(*mix.cut_ms)
        if rng.random() < mix.isolate_p or len(cluster.nodes) < 2:
            return Step("isolate", ("leader",), run_ms)
        nodes = list(cluster.nodes)
        rng.shuffle(nodes)
        cut = rng.randrange(1, len(nodes) // 2 + 1)
        return Step("partition", (tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:]))), run_ms)
    if kind == "crash":
        if down and (undo or len(down) == len(cluster.nodes)):
            return Step("restart", (rng.choice(down) if rng.random() < 0.7 else "all",), run_ms)
        r = rng.random()
        # Crashing every node at once is the power failure that loses whatever was not fsync'd.
        target = "all" if r < mix.crash_all_p else "leader" if rng.random() < mix.leader_p else rng.choice(list(cluster.nodes))
        return Step("crash", (target,), run_ms)
    if kind == "skew":
        skewed = any(n.skew_ms or n.rate != 1.0 for n in cluster.nodes.values())
        target = "leader" if rng.random() < mix.leader_p else rng.choice(list(cluster.nodes))
        if undo and skewed:
            return Step("skew", (target, 0, 1.0), run_ms)
        offset = (-1 if rng.random() < mix.skew_back_p else 1) * rng.randrange(100, max(101, mix.skew_max_ms))
        if rng.random() >= mix.drift_p:
            return Step("skew", (target, offset), run_ms)  # a jump
        return Step("skew", (target, offset, rng.choice(DRIFT_RATES)), run_ms)  # a jump, then a drift
    c = net.conditions
    if undo and c != HEALTHY:
        return Step("calm", (), run_ms)
    if kind == "drop":
        c = replace(c, drop=round(rng.uniform(0.05, 0.4), 3))
    elif kind == "duplicate":
        c = replace(c, duplicate=round(rng.uniform(0.05, 0.4), 3))
    else:  # delay: long enough to cost elections and reorder messages
        c = replace(c, delay_min_ms=0.5, delay_max_ms=float(rng.randrange(10, 150)))
    return Step("net", (c.drop, c.duplicate, c.delay_min_ms, c.delay_max_ms), run_ms)


def parse_faults(text: str | None, everything: tuple[str, ...] = FAULTS) -> frozenset[str]:
    """``"partition,crash"`` / ``"all"`` (``everything``) / ``"none"`` -> fault kinds; ValueError names the
    valid ones."""
    if text is None or text.strip() in ("", "none"):
        return frozenset()
    if text.strip() == "all":
        return frozenset(everything)
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - set(FAULTS) - set(DISK_FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(sorted(unknown))}; expected all, none or any of "
                         f"{', '.join(FAULTS + DISK_FAULTS)}")
    return kinds
