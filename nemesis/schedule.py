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

# A schedule longer than this is a mistake (a time limit of years, an interval of nanoseconds).
MAX_STEPS = 100_000


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


def fault_schedule(kinds: Sequence[Any], nodes: Sequence[str], *, interval_s: float, duration_s: float,
                   rng: random.Random) -> list[Step]:
    """Faults of the enabled ``kinds`` (nemesis/kinds.py FaultKinds) within ``duration_s``, each kind on a
    cycle of its own.

    Each kind alternates: calm for a random while (up to ``interval_s``), then one fault of that kind for
    ``interval_s``, healed before the next. Kinds run independently, so faults of different kinds overlap
    (a skewed clock during a partition is what a lease bug needs). Every fault is healed by ``duration_s``.
    """
    if not kinds:
        return []
    if not interval_s > 0:
        raise ValueError(f"the nemesis interval must be positive, got {interval_s}")
    if len(kinds) * duration_s / interval_s > MAX_STEPS:
        raise ValueError(f"{duration_s:g} s of faults every {interval_s:g} s is more than {MAX_STEPS} faults")
    steps: list[Step] = []
    for kind in kinds:
        t = rng.uniform(0.5, 1.0) * interval_s
        while t + interval_s <= duration_s + 1e-9:
            start, stop = kind.fault(nodes, rng)
            steps.append(Step(round(t, 3), start.f, start.value))  # ms: stored in test.json as it is
            steps.append(Step(round(t + interval_s, 3), stop.f, stop.value))
            t += interval_s + rng.uniform(0.5, 1.0) * interval_s
    steps.sort(key=lambda s: s.at_s)
    return steps


def schedule_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [s.to_json() for s in steps]
