"""The pytest plugin is inert unless a test asks for its fixture, and says in its failures what a user
needs: the verdict, the seed, the reason, the report and the repro command. Its real runs (passing,
catching a bug, a failure's message, Ctrl-C) are in tests/integration/test_pytest_example.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from splitbrain.harness.pytest_plugin import _options, failure_message

pytest_plugins = ["pytester"]


def test_a_suite_that_does_not_use_it_runs_as_without_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    with_plugin = pytester.runpytest("-q")
    without = pytester.runpytest("-q", "-p", "no:splitbrain")
    with_plugin.assert_outcomes(passed=1)
    without.assert_outcomes(passed=1)


def test_the_fixture_and_its_option_are_there(pytester: pytest.Pytester) -> None:
    assert "--splitbrain-store=DIR" in "\n".join(pytester.runpytest("--help").outlines)
    fixtures = "\n".join(pytester.runpytest("--fixtures").outlines)
    assert "splitbrain" in fixtures and "assert_valid" in fixtures


def test_keyword_options_become_the_run_options() -> None:
    options = _options({"target": "raft", "nemesis": "partition,kill", "bugs": "stale-read", "time_limit": 4,
                        "recovery": 1, "options": {"read": 1}, "seed": 3})
    assert (options.target, options.nemesis, options.bugs) == ("raft", ("partition", "kill"), ("stale-read",))
    assert (options.time_limit, options.recovery_s, options.target_opts, options.seed) == (4, 1, {"read": "1"}, 3)
    with pytest.raises(TypeError, match="unknown option.*wrkload"):
        _options({"wrkload": "register"})
    with pytest.raises(TypeError, match="unknown fault kind partitoin"):
        _options({"nemesis": "partitoin"})


def test_a_failure_says_the_verdict_seed_reason_report_and_repro(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<html>")
    outcome = SimpleNamespace(valid=False, error=None, seed=3, run_dir=SimpleNamespace(path=tmp_path),
                              results={"explanation": "[linearizable] key 1: cannot linearize read\nmore"})
    assert failure_message("expected valid", outcome).splitlines() == [
        "expected valid, got INVALID", "  seed: 3", "  reason: [linearizable] key 1: cannot linearize read",
        f"  report: {tmp_path}/report.html", f"  repro: splitbrain repro {tmp_path}"]


def test_a_composed_test_is_run_as_a_fresh_copy_per_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run fills in its test's seed and fault schedule: each seed must get its own copy, or every seed
    after the first would replay the first one's schedule."""
    from splitbrain.harness.pytest_plugin import SplitbrainFixture
    from splitbrain.harness.test import TestOptions

    given = TestOptions(nemesis=("partition",), time_limit=3).build()
    ran = []

    def fake_run(test, console=True):
        ran.append((test.seed, test.schedule, test.store))
        test.schedule = ["drawn"]
        return SimpleNamespace(valid=True, error=None, interrupted=None, run_dir=SimpleNamespace(path=tmp_path),
                               results={})

    monkeypatch.setattr("splitbrain.harness.run.run", fake_run)
    SplitbrainFixture(tmp_path / "runs").assert_valid(given, seeds=[4, 5])
    assert ran == [(4, None, str(tmp_path / "runs")), (5, None, str(tmp_path / "runs"))]
    assert given.seed is None and given.schedule is None
