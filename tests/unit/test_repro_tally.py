"""`splitbrain repro --tries N` counting (harness/repro.py ``tally``): which tries fail as the stored run did,
and the exit code a script relies on."""

from __future__ import annotations

from splitbrain.harness.repro import ReproTry, tally

STORED = frozenset({"applied-once:", "set:"})


def attempt(*signature: str, code: int | None = None) -> ReproTry:
    return ReproTry(frozenset(signature), code if code is not None else (1 if signature else 0), "runs/x")


def test_tries_failing_with_the_stored_signature_are_counted_and_exit_1() -> None:
    counted = tally(STORED, [attempt("set:"), attempt(), attempt("applied-once:", "set:")])
    assert (counted.failing, counted.failing_otherwise, counted.exit_code) == (2, 0, 1)
    assert counted.summary() == "failing in 2 of 3 tries"


def test_a_failure_of_another_kind_is_counted_apart_and_the_last_verdict_decides() -> None:
    counted = tally(STORED, [attempt("linearizable:"), attempt(code=2)])
    assert (counted.failing, counted.failing_otherwise) == (0, 1)
    assert counted.exit_code == 2  # none failed as stored: the last try's own code (here unknown)
    assert counted.summary() == "failing in 0 of 2 tries (1 more failed otherwise)"
    assert tally(STORED, [attempt(), attempt(code=4)]).exit_code == 4  # the last run itself failed


def test_a_stored_run_that_passed_counts_any_failure() -> None:
    assert tally(frozenset(), [attempt(), attempt("set:")]).failing == 1
    assert tally(frozenset(), [attempt(), attempt()]).exit_code == 0
