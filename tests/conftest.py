"""Test-suite policy: in CI (CI=true) nothing may be skipped; a skip there fails the run. Property tests
are derandomized everywhere."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: a failure is reproducible by rerunning, and a
# rare slow example cannot appear in one run and not the next.
settings.register_profile("splitbrain", derandomize=True, deadline=None)
settings.load_profile("splitbrain")

_IN_CI = os.environ.get("CI") == "true"
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _IN_CI and report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _IN_CI and _skipped:
        print(f"\nCI=true: {len(_skipped)} test(s) were skipped, and in CI every test must run:")
        for nodeid in _skipped[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
