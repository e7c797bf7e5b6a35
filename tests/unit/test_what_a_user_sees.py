"""What a person reads of a run: the help, the live line, the verdict line, the explanations, and the
one line Docker gets when it cannot start containers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from splitbrain.checkers.availability import check_availability
from splitbrain.checkers.linearizable import op_text
from splitbrain.harness.cli import build_parser
from splitbrain.harness.console import FaultTracker, verdict_lines
from splitbrain.harness.interpreter import Stats
from splitbrain.histories.history import History
from splitbrain.histories.op import Op


def _run_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["run"]


def test_every_run_option_says_its_default_and_the_help_lists_the_exit_codes() -> None:
    parser = _run_parser()
    for action in parser._actions:
        if action.dest in ("help",) or action.const is True:  # flags: off unless given
            continue
        assert action.help and "default" in action.help, f"--{action.dest} does not say its default"
    text = parser.format_help()
    assert "exit codes: 0 valid, 1 invalid, 2 unknown" in text and "130 SIGINT" in text
    bug_help = next(a.help for a in parser._actions if a.dest == "bug")
    for bug in ("stale-read", "early-ack", "lease-read", "no-fencing", "no-fsync"):
        assert bug in bug_help  # --bug lists its names


def nemesis(index: int, type_: str, f: str, value=None, error=None, time_ns: int = 0) -> Op:
    return Op(index, type_, "nemesis", f, value, None, time_ns, None, error)


def test_the_live_line_names_the_active_fault_kinds_not_op_names() -> None:
    stats = Stats()
    seen: list[Op] = []
    tracker = FaultTracker(stats, seen.append)
    tracker.append(nemesis(0, "invoke", "start-partition", "one"))
    tracker.append(nemesis(1, "info", "start-partition", {"kind": "one"}))
    tracker.append(nemesis(2, "info", "bump-clock", {"node1": 5}))
    tracker.append(nemesis(3, "info", "kill", "one"))
    assert stats.active_faults == ["partition", "clock", "kill"]
    tracker.append(nemesis(4, "info", "reset-clock"))
    tracker.append(nemesis(5, "info", "start", None))
    assert stats.active_faults == ["partition"]
    tracker.append(nemesis(6, "info", "pause", "primaries", error="the target named no primary"))
    assert stats.faults_failed == 1 and stats.active_faults == ["partition", "pause"]
    tracker.append(nemesis(7, "info", "heal", "healed"))
    assert stats.active_faults == [] and len(seen) == 8


def test_the_verdict_line_gives_counts_availability_and_faults_that_could_not_be_applied() -> None:
    s = 1_000_000_000
    ops = [Op(0, "invoke", 0, "read", None, None, 0), Op(1, "ok", 0, "read", 1, None, 10),
           nemesis(2, "invoke", "pause", "primaries", time_ns=1 * s),
           nemesis(3, "info", "pause", "primaries", error="the target named no primary", time_ns=1 * s),
           Op(4, "invoke", 1, "write", 2, None, 2 * s), Op(5, "info", 1, "write", 2, None, 3 * s),
           nemesis(6, "invoke", "heal", time_ns=4 * s), nemesis(7, "info", "heal", "healed", time_ns=4 * s)]
    availability = check_availability(History(ops)).to_json()
    assert availability["faults"] == {"applied": 0, "failed": 1, "failures": [
        {"kind": "pause", "at_s": 1.0, "error": "the target named no primary"}]}
    results = {"valid": True, "stats": {"ok_count": 1, "fail_count": 0, "info_count": 1},
               "availability": availability}
    lines = verdict_lines(results, 7, "runs/x", None)
    assert lines[0].startswith("VALID  seed 7  runs/x")
    assert "ok 1 fail 0 info 1" in lines[0] and "available 0% under faults, 100% without" in lines[0]
    assert "faults 0, 1 could not be applied" in lines[0]
    assert lines[1] == "  fault not applied: pause at 1.0 s: the target named no primary"
    interrupted = verdict_lines({**results, "valid": "unknown"}, 7, "runs/x", "SIGTERM")
    assert interrupted[0].startswith("UNKNOWN (interrupted by SIGTERM)")


def test_explanations_show_nil_values() -> None:
    history = History([Op(0, "invoke", 0, "read", None, 3, 0), Op(1, "ok", 0, "read", None, 3, 5)])
    assert op_text(history.operations()[0]).endswith("read key=3 -> ok nil")


FAKE_DOCKER = """#!/bin/sh
case "$1" in
  version) echo 20.10; exit 0 ;;
  image) exit 0 ;;
  import) exit 0 ;;
  run) echo 'docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc \
create failed: unable to start container process: error during container init: error mounting "cgroup" to \
rootfs at "/sys/fs/cgroup": read-only file system: unknown.' >&2; exit 125 ;;
esac
exit 0
"""


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the probe's program is x86_64")
def test_docker_that_cannot_start_a_container_is_one_line_and_exit_4_in_seconds(tmp_path: Path) -> None:
    """As inside a container whose cgroups are read-only: images and runs are refused at once, before
    any image build or run directory."""
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{docker.parent}:{os.environ['PATH']}"}
    for args in (["images", "build"], ["run", "--remote", "docker", "--nodes", "3", "--store", str(tmp_path / "runs")]):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", *args], capture_output=True,
                              text=True, timeout=60, env=env)
        assert time.monotonic() - started < 15
        assert done.returncode == 4, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: Docker cannot start containers here:"), done.stderr
        assert "read-only file system" in lines[0]
    assert not (tmp_path / "runs").exists()
