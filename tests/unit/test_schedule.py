"""Fault schedules are seeded data: the same seed gives the same schedule, and every fault is healed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.histories.faults import FAULT_ENDS
from splitbrain.nemesis.kinds import FAULT_KINDS, kinds_named, parse_kinds
from splitbrain.nemesis.schedule import MAX_STEPS, Step, fault_schedule

NODES = [f"node{i}" for i in range(1, 6)]
HEALS = {start: end for start, (end, _) in FAULT_ENDS.items() if start != "strobe-clock"}
ALL = kinds_named(FAULT_KINDS)


def test_same_seed_same_schedule() -> None:
    a = fault_schedule(ALL, NODES, interval_s=2, duration_s=30, rng=random.Random(5))
    b = fault_schedule(ALL, NODES, interval_s=2, duration_s=30, rng=random.Random(5))
    c = fault_schedule(ALL, NODES, interval_s=2, duration_s=30, rng=random.Random(6))
    assert a == b != c
    assert [Step.from_json(s.to_json()) for s in a] == a


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**9), kinds=st.sets(st.sampled_from(FAULT_KINDS), min_size=1),
       interval=st.floats(0.5, 5), duration=st.floats(1, 60))
def test_every_fault_is_healed_within_the_duration(seed: int, kinds: set, interval: float, duration: float) -> None:
    steps = fault_schedule(kinds_named(sorted(kinds)), NODES, interval_s=interval, duration_s=duration, rng=random.Random(seed))
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
    for empty in ("", " ", "kill,", ",kill"):  # an empty kind is a mistake, not "none"
        with pytest.raises(ValueError, match="expected all, none"):
            parse_kinds(empty)


def test_a_schedule_of_more_faults_than_makes_sense_is_refused_before_it_is_built() -> None:
    with pytest.raises(ValueError, match=f"more than {MAX_STEPS} faults"):
        fault_schedule(ALL, NODES, interval_s=1, duration_s=1e308, rng=random.Random(1))


def test_without_primaries_no_fault_aims_at_them() -> None:
    kinds = kinds_named(FAULT_KINDS, capabilities={"kill/start", "pause/resume"})
    steps = fault_schedule(kinds, NODES, interval_s=1, duration_s=200, rng=random.Random(2))
    assert steps and not any(s.value == "primaries" for s in steps)
    with_them = fault_schedule(kinds_named(FAULT_KINDS, capabilities={"primaries"}), NODES, interval_s=1,
                               duration_s=200, rng=random.Random(2))
    assert any(s.value == "primaries" for s in with_them)
