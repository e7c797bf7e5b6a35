"""The pytest plugin with real runs: the example test file passes (a valid store, a bug caught), a test
that expects the wrong verdict fails saying the verdict, seed, reason, report and repro command, and a
Ctrl-C during a run ends the session with the run healed and removed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness.store import RunDir

from tests.integration.helpers import needs_root, wait_for

pytestmark = [pytest.mark.integration, needs_root]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pytest" / "test_with_splitbrain.py"


def pytest_in(tmp_path: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    """A user's pytest session (the plugin comes in through its entry point), its own rootdir."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                             "-c", str(tmp_path / "pytest.ini"), "--splitbrain-store", str(tmp_path / "runs"), *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def run_ids(store: Path) -> set[str]:
    return {RunDir(p.parent).run_id for p in store.glob("*/*/*/test.json")}


@pytest.mark.timeout(600)
def test_the_example_passes_one_valid_and_one_bug_caught(tmp_path: Path) -> None:
    process = pytest_in(tmp_path, str(EXAMPLE))
    out, _ = process.communicate(timeout=560)
    assert process.returncode == 0, out
    assert re.search(r"\b2 passed\b", out), out
    ids = run_ids(tmp_path / "runs")
    assert len(ids) >= 2 and not ids & set(leftover_runs())


@pytest.mark.timeout(300)
def test_a_failing_assertion_says_verdict_seed_reason_report_and_repro(tmp_path: Path) -> None:
    (tmp_path / "test_wrong.py").write_text(textwrap.dedent("""\
        def test_a_broken_store_called_valid(splitbrain):
            splitbrain.assert_valid(target="raft", nemesis="partition", bugs="stale-read", seed=1,
                                    time_limit=4, nemesis_interval=1, recovery=1, nodes=3)
        """))
    process = pytest_in(tmp_path, "test_wrong.py")
    out, _ = process.communicate(timeout=240)
    assert process.returncode == 1, out
    assert "expected valid, got INVALID" in out and "seed: 1" in out, out
    assert re.search(r"reason: \[linearizable\] key \S+: cannot linearize", out), out
    report = re.search(r"report: (\S+)", out).group(1)
    repro = re.search(r"repro: splitbrain repro (\S+)", out).group(1)
    assert Path(report).is_file() and Path(repro, "test.json").is_file()
    assert "Traceback" not in out
    assert not run_ids(tmp_path / "runs") & set(leftover_runs())


@pytest.mark.timeout(240)
def test_ctrl_c_during_a_run_heals_removes_it_and_ends_the_session(tmp_path: Path) -> None:
    (tmp_path / "test_long.py").write_text(textwrap.dedent("""\
        def test_long(splitbrain):
            splitbrain.assert_valid(target="raft", nemesis="partition", seed=1, time_limit=60,
                                    nemesis_interval=1, nodes=3)

        def test_never_reached():
            pass
        """))
    process = pytest_in(tmp_path, "test_long.py", start_new_session=True)
    try:
        histories = lambda: list((tmp_path / "runs").glob("*/*/*/history.jsonl"))  # noqa: E731
        assert wait_for(lambda: histories() and histories()[0].stat().st_size > 2000, 60), "the run never started"
        os.kill(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, out  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out and "test_never_reached" not in out.split("KeyboardInterrupt")[0]
    (run_dir,) = {p.parent for p in (tmp_path / "runs").glob("*/*/*/test.json")}
    assert '"interrupted": true' in (run_dir / "results.json").read_text()
    assert RunDir(run_dir).run_id not in leftover_runs()
