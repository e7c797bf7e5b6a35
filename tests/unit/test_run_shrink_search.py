"""The real-run shrink search (harness/shrink.py) against a fake, flaky run: it keeps what the failure
needs, drops the rest, retries flaky candidates, and stops at its budget."""

from __future__ import annotations

import itertools

from splitbrain.harness.shrink import (
    Candidate,
    Limits,
    Trial,
    fault_count,
    fault_units,
    fit_schedule,
    search,
    signature_of,
)
from splitbrain.nemesis.schedule import Step

SIG = frozenset({"linearizable:stale-read"})
SCHEDULE = tuple(Step(float(i), f"start-fault-{i}") for i in range(12))
START = Candidate(SCHEDULE, Limits(time_limit_s=60.0, concurrency=10, nodes=5))


def fake(flaky_every: int = 1):  # noqa: ANN201
    """Fails when faults 3 and 7 are in and the run lasts past 8 s with 2+ clients; with flaky_every=k only
    every k-th such try fails (a real cluster's luck)."""
    counter = itertools.count(1)

    def try_candidate(c: Candidate) -> Trial:
        names = {s.f for s in c.schedule}
        needed = {"start-fault-3", "start-fault-7"} <= names and c.limits.time_limit_s > 8 and c.limits.concurrency >= 2
        lucky = next(counter) % flaky_every == 0
        return Trial(SIG if needed and lucky else frozenset(), ops=int(c.limits.time_limit_s * 100))

    return try_candidate


def test_the_search_keeps_only_what_the_failure_needs() -> None:
    found = search(START, fake(), SIG, tries=3, budget_s=1e9, start_ops=6000)
    assert [s.f for s in found.best.schedule] == ["start-fault-3", "start-fault-7"]
    assert found.best.limits == Limits(time_limit_s=15.0, concurrency=2, nodes=1)
    assert found.summary() == (
        "from 12 faults / 60 s / 6,000 ops to 2 faults / 15 s / 1,500 ops, concurrency 10 -> 2, nodes 5 -> 1, "
        "failing on try 1 of up to 3")


def test_a_flaky_failure_is_kept_through_retries() -> None:
    found = search(START, fake(flaky_every=3), SIG, tries=3, budget_s=1e9)
    assert {"start-fault-3", "start-fault-7"} <= {s.f for s in found.best.schedule} and len(found.best.schedule) == 2


def test_the_budget_bounds_the_search() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each look at the clock: one second
        return now[0]

    found = search(START, fake(), SIG, tries=3, budget_s=10, clock=clock)
    assert found.out_of_budget and found.trials < 10
    assert {"start-fault-3", "start-fault-7"} <= {s.f for s in found.best.schedule}  # the best so far still fails


def test_signature_names_checker_and_anomaly() -> None:
    from splitbrain.checkers.result import Result, compose

    results = compose({"elle": Result(False, {"anomaly_types": ["G1c"]}, "a cycle"), "stats": Result(True, {})}).to_json()
    assert signature_of(results) == frozenset({"elle:G1c"})
    assert signature_of(compose({"linear": Result(False, {}, "x")}).to_json()) == frozenset({"linear:"})
    assert signature_of(compose({"linear": Result(True, {})}).to_json()) == frozenset()


def test_faults_are_dropped_whole_with_the_step_that_ends_them() -> None:
    schedule = (Step(0.5, "pause", "one"), Step(1.0, "kill", "minority"), Step(1.5, "resume"), Step(2.0, "start"),
                Step(3.0, "pause", "primaries"), Step(4.0, "resume"), Step(5.0, "custom-op"))
    assert fault_units(schedule) == [(schedule[0], schedule[2]), (schedule[1], schedule[3]), (schedule[4], schedule[5]),
                                     (schedule[6],)]
    assert fault_count(schedule) == 3

    def needs_the_kill(c: Candidate) -> Trial:  # fails only while the kill is on and later ended by its start
        fs = [s.f for s in c.schedule]
        return Trial(SIG if "kill" in fs and "start" in fs else frozenset())

    found = search(Candidate(schedule, Limits(8.0, 1, 3)), needs_the_kill, SIG, tries=1, budget_s=1e9)
    assert found.best.schedule == (schedule[1], schedule[3])  # the kill kept with its start, nothing else


def test_node_count_stops_at_the_targets_minimum_and_keys_narrow() -> None:
    def fails_with_two_keys_or_more(c: Candidate) -> Trial:
        return Trial(SIG if c.limits.key_count >= 2 else frozenset())

    start = Candidate(SCHEDULE[:1], Limits(time_limit_s=1.0, concurrency=1, nodes=7, key_count=8))
    assert search(start, fails_with_two_keys_or_more, SIG, budget_s=1e9, min_nodes=4).best.limits == \
        Limits(time_limit_s=1.0, concurrency=1, nodes=4, key_count=2)
    at_minimum = Candidate(SCHEDULE[:1], Limits(time_limit_s=1.0, concurrency=1, nodes=4))
    tried: list[int] = []
    search(at_minimum, lambda c: tried.append(c.limits.nodes) or Trial(SIG), SIG, budget_s=1e9, min_nodes=4)
    assert set(tried) == {4}  # never a cluster smaller than the target runs on


def test_fewer_nodes_drop_the_steps_that_name_a_node_no_longer_there() -> None:
    schedule = (Step(1.0, "pause", ["node5"]), Step(2.0, "kill", "minority"), Step(3.0, "bump-clock", {"node2": -30}),
                Step(4.0, "start-partition", [["node1", "node4"], ["node2", "node3"]]))
    assert fit_schedule(schedule, ["node1", "node2", "node3"]) == schedule[1:3]
