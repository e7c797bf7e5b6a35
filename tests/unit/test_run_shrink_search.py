"""The real-run shrink search (harness/shrink.py) against a fake, flaky run: it keeps what the failure
needs, drops the rest, retries flaky candidates, and stops at its budget."""

from __future__ import annotations

import itertools

from splitbrain.harness.shrink import Candidate, Limits, Trial, search, signature_of
from splitbrain.nemesis.schedule import Step

SIG = frozenset({"linearizable:stale-read"})
SCHEDULE = tuple(Step(float(i), f"fault-{i}") for i in range(12))
START = Candidate(SCHEDULE, Limits(time_limit_s=60.0, concurrency=10, nodes=5))


def fake(flaky_every: int = 1):  # noqa: ANN201
    """Fails when faults 3 and 7 are in and the run lasts past 8 s with 2+ clients; with flaky_every=k only
    every k-th such try fails (a real cluster's luck)."""
    counter = itertools.count(1)

    def try_candidate(c: Candidate) -> Trial:
        names = {s.f for s in c.schedule}
        needed = {"fault-3", "fault-7"} <= names and c.limits.time_limit_s > 8 and c.limits.concurrency >= 2
        lucky = next(counter) % flaky_every == 0
        return Trial(SIG if needed and lucky else frozenset(), ops=int(c.limits.time_limit_s * 100))

    return try_candidate


def test_the_search_keeps_only_what_the_failure_needs() -> None:
    found = search(START, fake(), SIG, tries=3, budget_s=1e9, start_ops=6000)
    assert [s.f for s in found.best.schedule] == ["fault-3", "fault-7"]
    assert found.best.limits == Limits(time_limit_s=15.0, concurrency=2, nodes=1)
    assert found.summary() == "from 12 faults / 60 s / 6,000 ops to 2 faults / 15 s / 1,500 ops, failing on try 1 of up to 3"


def test_a_flaky_failure_is_kept_through_retries() -> None:
    found = search(START, fake(flaky_every=3), SIG, tries=3, budget_s=1e9)
    assert {"fault-3", "fault-7"} <= {s.f for s in found.best.schedule} and len(found.best.schedule) == 2


def test_the_budget_bounds_the_search() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each look at the clock: one second
        return now[0]

    found = search(START, fake(), SIG, tries=3, budget_s=10, clock=clock)
    assert found.out_of_budget and found.trials < 10
    assert {"fault-3", "fault-7"} <= {s.f for s in found.best.schedule}  # the best so far still fails


def test_signature_names_checker_and_anomaly() -> None:
    from splitbrain.checkers.result import Result, compose

    results = compose({"elle": Result(False, {"anomaly_types": ["G1c"]}, "a cycle"), "stats": Result(True, {})}).to_json()
    assert signature_of(results) == frozenset({"elle:G1c"})
    assert signature_of(compose({"linear": Result(False, {}, "x")}).to_json()) == frozenset({"linear:"})
    assert signature_of(compose({"linear": Result(True, {})}).to_json()) == frozenset()
