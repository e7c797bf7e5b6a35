"""ddmin against brute force: the result still fails, and no single item of it can be removed."""

from __future__ import annotations

import itertools
import random

from splitbrain.checkers.ddmin import Budget, ddmin


def test_ddmin_is_one_minimal_and_keeps_order_on_random_predicates() -> None:
    rng = random.Random(14)
    for _ in range(200):
        items = list(range(rng.randrange(1, 12)))
        # Fails when it holds every item of one of a few random "causes".
        causes = [frozenset(rng.sample(items, rng.randrange(1, min(4, len(items)) + 1))) for _ in range(3)]

        def fails(c: list[int], causes: list[frozenset[int]] = causes) -> bool:
            return any(cause <= set(c) for cause in causes)

        result = ddmin(items, fails)
        assert fails(result) and result == sorted(result)
        assert all(not fails(result[:i] + result[i + 1:]) for i in range(len(result)))
        smallest = min(len(c) for c in causes)
        brute = min(len(s) for r in range(len(items) + 1) for s in itertools.combinations(items, r) if fails(list(s)))
        assert brute == smallest and len(result) >= smallest


def test_ddmin_stops_when_its_budget_is_spent() -> None:
    calls: list[int] = []

    def fails(c: list[int]) -> bool:
        calls.append(1)
        return 7 in c

    budget = Budget(3)
    result = ddmin(list(range(100)), fails, budget)
    assert len(calls) == 3 and budget.left == 0 and 7 in result
    assert ddmin(list(range(100)), fails) == [7]
