"""The simulated network between Raft nodes: partitions, loss, delay, reordering, duplication.

Every decision comes from the ``random.Random`` it is given. Reordering is not a separate switch:
it follows from independent random delays (a later message can overtake an earlier one).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkConditions:
    drop: float = 0.0          # probability that a message is lost
    duplicate: float = 0.0     # probability that a message is delivered twice
    delay_min_ms: float = 0.5
    delay_max_ms: float = 3.0  # one-way delay uniform in [min, max]: jitter reorders messages


HEALTHY = LinkConditions()


class Network:
    def __init__(self, nodes: Iterable[str], rng: random.Random) -> None:
        self.nodes = tuple(nodes)
        self.rng = rng
        self.conditions = HEALTHY
        self._blocked: set[tuple[str, str]] = set()

    # -- partitions (grudges: who cannot hear whom) --------------------------------------------------
    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Nodes in different groups cannot talk; nodes not named form one more group."""
        component: dict[str, int] = {}
        for i, g in enumerate(groups):
            for n in g:
                component[n] = i
        for n in self.nodes:
            component.setdefault(n, -1)
        self._blocked = {(a, b) for a in self.nodes for b in self.nodes
                         if a != b and component[a] != component[b]}

    def heal(self) -> None:
        self._blocked = set()

    def connected(self, a: str, b: str) -> bool:
        return (a, b) not in self._blocked

    def components(self) -> list[list[str]]:
        out: list[list[str]] = []
        for n in self.nodes:
            for comp in out:
                if self.connected(comp[0], n):
                    comp.append(n)
                    break
            else:
                out.append([n])
        return out

    # -- one message ----------------------------------------------------------------------------------
    def deliveries(self, a: str, b: str) -> list[int]:
        """Delays (µs) after which a message sent now from a to b arrives: [] when lost, 2 when duplicated."""
        c = self.conditions
        if not self.connected(a, b) or (c.drop and self.rng.random() < c.drop):
            return []
        copies = 2 if c.duplicate and self.rng.random() < c.duplicate else 1
        return [int(self.rng.uniform(c.delay_min_ms, c.delay_max_ms) * 1000) for _ in range(copies)]
