"""Fault schedules as data: a seeded, replayable list of timed nemesis ops.

A schedule alternates a fault and its healing: every ``interval`` seconds one fault of an enabled kind
starts, and it is healed ``interval`` seconds later (Jepsen's start/stop cycle), so the system sees both
faults and recovery. Every choice that can be made in advance (kind, partition shape, nodes, clock deltas,
loss rates) is made here from the run's seed and stored in the op's value, so the same seed gives the same
schedule, and a schedule can be edited or shortened by hand and replayed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("partition", "kill", "pause", "clock", "packet")


@dataclass(frozen=True)
class Step:
    """At ``at_s`` seconds after the start of the run, invoke nemesis op ``f`` with ``value``."""

    at_s: float
    f: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"at_s": round(self.at_s, 6), "f": self.f, "value": self.value}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Step:
        return Step(float(d["at_s"]), str(d["f"]), d.get("value"))


def parse_kinds(spec: str) -> tuple[str, ...]:
    """``partition,kill`` | ``all`` | ``none`` -> the fault kinds; ValueError names the valid ones."""
    spec = spec.strip()
    if spec in ("", "none"):
        return ()
    if spec == "all":
        return FAULT_KINDS
    kinds = tuple(k.strip() for k in spec.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown nemesis {', '.join(unknown)}; expected all, none, or a comma list of "
            f"{', '.join(FAULT_KINDS)}"
        )
    return tuple(dict.fromkeys(kinds))


def _fault(
    kind: str, nodes: Sequence[str], rng: random.Random, partition_kinds: Sequence[str]
) -> tuple[Step, Step]:
    """The (start, stop) op pair of one fault of ``kind``, at time 0."""
    n = len(nodes)
    if kind == "partition":
        return Step(0, "start-partition", rng.choice(list(partition_kinds))), Step(0, "stop-partition")
    if kind == "kill":
        return Step(0, "kill", rng.choice(["one", "minority", "primaries"])), Step(0, "start")
    if kind == "pause":
        return Step(0, "pause", rng.choice(["one", "minority", "primaries"])), Step(0, "resume")
    if kind == "clock":
        chosen = sorted(rng.sample(list(nodes), rng.randint(1, max(1, n // 2))))
        deltas = {node: rng.choice([-1, 1]) * rng.choice([50, 250, 1000, 5000, 30000]) for node in chosen}
        return Step(0, "bump-clock", deltas), Step(0, "reset-clock")
    if kind == "packet":
        value = {"loss": rng.choice([0.05, 0.2, 0.5]), "nodes": rng.choice(["one", "minority", "all"])}
        return Step(0, "start-packet", value), Step(0, "stop-packet")
    raise ValueError(f"unknown fault kind {kind!r}")


def fault_schedule(kinds: Sequence[str], nodes: Sequence[str], *, interval_s: float, duration_s: float,
                   rng: random.Random, partition_kinds: Sequence[str] = ("one", "halves")) -> list[Step]:
    """Faults of the enabled ``kinds`` within ``duration_s``, each kind on a cycle of its own.

    Each kind alternates: calm for a random while (up to ``interval_s``), then one fault of that kind for
    ``interval_s``, healed before the next. Kinds run independently, so faults of different kinds overlap
    (a skewed clock during a partition is what a lease bug needs). Every fault is healed by ``duration_s``.
    """
    if not kinds:
        return []
    if interval_s <= 0:
        raise ValueError(f"the nemesis interval must be positive, got {interval_s}")
    steps: list[Step] = []
    for kind in kinds:
        t = rng.uniform(0.5, 1.0) * interval_s
        while t + interval_s <= duration_s + 1e-9:
            start, stop = _fault(kind, nodes, rng, partition_kinds)
            steps.append(Step(round(t, 3), start.f, start.value))  # ms: stored in test.json as it is
            steps.append(Step(round(t + interval_s, 3), stop.f, stop.value))
            t += interval_s + rng.uniform(0.5, 1.0) * interval_s
    steps.sort(key=lambda s: s.at_s)
    return steps


def schedule_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [s.to_json() for s in steps]
