"""Test-suite policy: in CI (CI=true) nothing may be skipped; a skip there fails the run."""

from __future__ import annotations

import os

import pytest

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
