"""Fault schedules are seeded data: the same seed gives the same schedule, and every fault is healed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.nemesis.schedule import FAULT_KINDS, Step, fault_schedule, parse_kinds

NODES = [f"node{i}" for i in range(1, 6)]
HEALS = {"start-partition": "stop-partition", "kill": "start", "pause": "resume", "bump-clock": "reset-clock",
         "start-packet": "stop-packet"}


def test_same_seed_same_schedule() -> None:
    a = fault_schedule(FAULT_KINDS, NODES, interval_s=2, duration_s=30, rng=random.Random(5))
    b = fault_schedule(FAULT_KINDS, NODES, interval_s=2, duration_s=30, rng=random.Random(5))
    c = fault_schedule(FAULT_KINDS, NODES, interval_s=2, duration_s=30, rng=random.Random(6))
    assert a == b != c
    assert [Step.from_json(s.to_json()) for s in a] == a


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**9), kinds=st.sets(st.sampled_from(FAULT_KINDS), min_size=1),
       interval=st.floats(0.5, 5), duration=st.floats(1, 60))
def test_every_fault_is_healed_within_the_duration(seed: int, kinds: set, interval: float, duration: float) -> None:
    steps = fault_schedule(sorted(kinds), NODES, interval_s=interval, duration_s=duration, rng=random.Random(seed))
    assert steps == sorted(steps, key=lambda s: s.at_s)
    assert all(0 < s.at_s <= duration + 1e-3 for s in steps)  # times are whole ms
    active: dict[str, int] = {}
    for s in steps:
        if s.f in HEALS:
            assert active.get(s.f, 0) == 0, "two faults of one kind overlap"
            active[s.f] = 1
        else:
            started = next(k for k, v in HEALS.items() if v == s.f)
            assert active.get(started) == 1
            active[started] = 0
    assert not any(active.values())


def test_parse_kinds() -> None:
    assert parse_kinds("all") == FAULT_KINDS
    assert parse_kinds("none") == ()
    assert parse_kinds("kill,partition,kill") == ("kill", "partition")
    with pytest.raises(ValueError, match="unknown nemesis frob"):
        parse_kinds("partition,frob")
