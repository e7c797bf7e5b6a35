"""Delta debugging (Zeller's ddmin): the smallest sublist of a failing list that still fails.

    ddmin(items, fails, budget) -> (items, runs)

``fails(candidate)`` runs one candidate; ddmin removes chunks (halves, then quarters, ... then single
items) for as long as some removal still fails, so the result is 1-minimal -- no single item can be
removed -- unless ``budget`` (a number of ``fails`` calls, not a time: the result must not depend on the
machine's speed) runs out first. Order is kept. Pure: the same ``fails`` gives the same result.
Used by the simulator's shrinker (schedule steps, client ops), the real-run shrinker (schedule steps)
and the evidence shrinker (the ops of a non-linearizable history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class Budget:
    """How many more candidate runs a search may make; shared by the passes of one search."""

    def __init__(self, runs: int) -> None:
        self.left = runs
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], budget: Budget | None = None) -> list[T]:
    """A 1-minimal failing sublist of ``items`` (which must fail); stops early when ``budget`` is spent."""
    budget = budget or Budget(10**9)
    current = list(items)
    n = 2
    while len(current) >= 2:
        size = -(-len(current) // n)  # ceil: n chunks of about equal size
        chunks = [current[i:i + size] for i in range(0, len(current), size)]
        for i in range(len(chunks)):
            # The complement of chunk i: everything else, in order. Trying the tail chunks first finds
            # "the failure happened before here" cuts early, which most failing runs allow.
            j = len(chunks) - 1 - i
            candidate = [x for k, c in enumerate(chunks) if k != j for x in c]
            if not budget.take():
                return current
            if fails(candidate):
                current = candidate
                n = max(n - 1, 2)
                break
        else:
            if n >= len(current):
                break  # every single removal was tried: 1-minimal
            n = min(2 * n, len(current))
    if len(current) == 1 and budget.take() and fails([]):
        return []
    return current
