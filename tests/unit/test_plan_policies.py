"""How a test of a plan is judged by its runs (expectation and pass policy), and how the plan's exit code
follows from its tests: the gate CI relies on."""

from __future__ import annotations

import itertools

import pytest
from splitbrain.harness.plan.model import (
    ERROR,
    FAIL,
    MET,
    MISSED,
    NOT_RUN,
    PASS,
    UNKNOWN,
    plan_exit_code,
    run_outcome,
    satisfied,
    verdict,
)


@pytest.mark.parametrize("expect,valid,error,interrupted,outcome", [
    ("valid", True, False, False, MET),
    ("valid", False, False, False, MISSED),
    ("valid", "unknown", False, False, UNKNOWN),
    ("invalid", False, False, False, MET),
    ("invalid", True, False, False, MISSED),
    ("invalid", "unknown", False, False, UNKNOWN),
    ("valid", True, True, False, ERROR),          # the run failed: its valid prefix proves nothing
    ("invalid", False, True, False, MET),         # an anomaly found before the run failed stands
    ("valid", True, False, True, UNKNOWN),        # stopped early: not a whole run
    ("valid", False, False, True, MISSED),
])
def test_a_run_against_its_expectation(expect: str, valid: object, error: bool, interrupted: bool,
                                       outcome: str) -> None:
    assert run_outcome(expect, valid, error=error, interrupted=interrupted) == outcome


@pytest.mark.parametrize("policy,outcomes,runs,expected", [
    ("all", [MET, MET, MET], 3, PASS),
    ("all", [MET, MISSED, MET], 3, FAIL),
    ("all", [MET, UNKNOWN, MET], 3, UNKNOWN),
    ("all", [MET, ERROR, MET], 3, ERROR),
    ("all", [MISSED, ERROR], 2, FAIL),            # one missed run decides it, whatever the rest
    ("all", [MET], 3, UNKNOWN),                   # stopped with runs left
    ("any", [MISSED, MISSED, MET], 3, PASS),      # a bug hunt: one sighting is enough
    ("any", [MISSED, MISSED, MISSED], 3, FAIL),
    ("any", [MISSED, UNKNOWN], 2, UNKNOWN),
    ("any", [MISSED, ERROR, UNKNOWN], 3, ERROR),
    ("any", [MET], 8, PASS),                      # found on the first seed: the others are not needed
    ("most", [MET, MET, MISSED], 3, PASS),
    ("most", [MET, MISSED, MISSED], 3, FAIL),
    ("most", [MET, MISSED], 2, FAIL),             # half is not most
    ("most", [MET, MISSED, UNKNOWN], 3, UNKNOWN),
    ("most", [MET, MET], 4, UNKNOWN),
])
def test_a_test_by_its_pass_policy(policy: str, outcomes: list[str], runs: int, expected: str) -> None:
    assert verdict(policy, outcomes, runs) == expected


@pytest.mark.parametrize("policy", ["all", "most", "any"])
def test_a_verdict_is_pass_or_fail_exactly_when_the_undecided_runs_cannot_change_it(policy: str) -> None:
    """Against brute force: pass/fail only when every way the undecided runs could still go agrees."""
    for runs in range(1, 6):
        for outcomes in itertools.product([MET, MISSED, UNKNOWN, ERROR, NOT_RUN], repeat=runs):
            undecided = [i for i, o in enumerate(outcomes) if o not in (MET, MISSED)]
            results = set()
            for fill in itertools.product([MET, MISSED], repeat=len(undecided)):
                filled = list(outcomes)
                for i, o in zip(undecided, fill, strict=True):
                    filled[i] = o
                results.add(satisfied(policy, filled.count(MET), runs))
            got = verdict(policy, list(outcomes), runs)
            if results == {True}:
                assert got == PASS, (policy, outcomes)
            elif results == {False}:
                assert got == FAIL, (policy, outcomes)
            else:
                assert got == (ERROR if ERROR in outcomes else UNKNOWN), (policy, outcomes)


@pytest.mark.parametrize("verdicts,code", [
    ([PASS, PASS], 0),
    ([PASS, FAIL], 1),
    ([PASS, UNKNOWN], 2),
    ([PASS, ERROR], 4),
    ([UNKNOWN, ERROR], 4),
    ([FAIL, ERROR, UNKNOWN], 1),  # a test that did not meet its expectation is the finding that counts
])
def test_the_plan_exit_code(verdicts: list[str], code: int) -> None:
    assert plan_exit_code(verdicts) == code
