"""A run stopped every way CI systems and people stop jobs leaves nothing behind: SIGINT, a second SIGINT
timed into the teardown, SIGTERM, SIGHUP, and kill -9 of the harness (its reaper cleans up), each at
seeded random moments. Also: kill and pause reach a daemon that left its process group through the
cgroup v1 freezer, and a machine with neither cgroup says so in one line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from splitbrain.control.local import LocalCluster, leftover_runs
from splitbrain.control.remote import CGROUP_ENV, NO_CGROUP_WARNING, FreezerCgroup, freezer_mount
from splitbrain.harness.store import RunDir

from tests.integration.helpers import needs_root, process_gone, run_namespaces, wait_for

pytestmark = [pytest.mark.integration, needs_root]

RUN = ["run", "--time-limit", "6", "--nemesis-interval", "1.2", "--nodes", "3", "--rate", "80", "--recovery", "1",
       "--nemesis", "all"]


def start_run(store: Path, seed: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`splitbrain run` in a session of its own, as a CI job runs it (a signal reaches it alone)."""
    return subprocess.Popen([sys.executable, "-m", "splitbrain.harness.cli", *RUN, "--store", str(store),
                             "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def run_dir_of(store: Path, timeout: float = 30) -> Path:
    assert wait_for(lambda: (store / "latest" / "test.json").exists(), timeout), "the run never started"
    return (store / "latest").resolve()


def run_processes(run_dir: Path) -> list[str]:
    """Processes whose command line names the run directory (the target's servers, the reaper)."""
    listing = subprocess.run(["pgrep", "-af", str(run_dir)], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "pgrep" not in line]


def nothing_left(run_dir: Path) -> list[str]:
    run_id = RunDir(run_dir).run_id
    left = [f"namespace {ns}" for ns in run_namespaces(run_id)]
    if run_id in leftover_runs():
        left.append("a namespace or cgroup")
    return left + [f"process {p}" for p in run_processes(run_dir)]


def assert_whole_history(run_dir: Path, torn_end: bool = False) -> None:
    """Every recorded line is whole (after kill -9 the very last one may be torn: analyze drops it)."""
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    assert lines, "nothing was recorded"
    for line in lines[:-1] if torn_end else lines:
        json.loads(line)


EXIT_OF = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_heals_checks_and_removes_everything(tmp_path: Path, sig: signal.Signals) -> None:
    rng = random.Random(int(sig))
    for attempt in range(2):  # two seeded moments: in the set-up or early, and under faults
        store = tmp_path / str(attempt)
        proc = start_run(store, seed=attempt + 1)
        try:
            run_dir = run_dir_of(store)
            time.sleep(rng.uniform(0.2, 5.0))
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "Traceback" not in err, err
        assert proc.returncode in (EXIT_OF[sig], 1), (proc.returncode, out, err)
        results = json.loads((run_dir / "results.json").read_text())
        assert results["interrupted"] is True and results["interrupted_by"] == sig.name
        assert f"interrupted by {sig.name}" in out
        assert not nothing_left(run_dir), nothing_left(run_dir)
        assert not (run_dir / ".running").exists()


@pytest.mark.timeout(300)
def test_a_second_sigint_during_the_teardown_skips_the_waits_but_not_the_clean_up(tmp_path: Path) -> None:
    rng = random.Random(22)
    for attempt in range(2):
        store = tmp_path / str(attempt)
        proc = start_run(store, seed=10 + attempt)
        try:
            run_dir = run_dir_of(store)
            history = run_dir / "history.jsonl"
            wait_for(lambda h=history: h.exists() and h.stat().st_size > 3000, 20)
            proc.send_signal(signal.SIGINT)
            time.sleep(rng.uniform(0.0, 1.5))  # into the healing, recovery and final reads
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "Traceback" not in err, err
        assert proc.returncode in (130, 1), (out, err)
        assert json.loads((run_dir / "results.json").read_text())["interrupted"] is True
        assert_whole_history(run_dir)
        assert not nothing_left(run_dir), nothing_left(run_dir)


@pytest.mark.timeout(300)
def test_kill_9_of_the_harness_leaves_nothing_within_ten_seconds(tmp_path: Path) -> None:
    """The reaper notices the harness is gone and removes the run's namespaces, cgroups and processes."""
    rng = random.Random(9)
    for attempt in range(3):
        store = tmp_path / str(attempt)
        proc = start_run(store, seed=20 + attempt)
        run_dir = run_dir_of(store)
        time.sleep(rng.uniform(0.0, 6.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the harness and whatever is still in its process group
        proc.wait(timeout=30)
        assert wait_for(lambda d=run_dir: not nothing_left(d), 10), nothing_left(run_dir)
        if (run_dir / "history.jsonl").exists() and (run_dir / "history.jsonl").stat().st_size:
            assert_whole_history(run_dir, torn_end=True)
        assert "removing what run" in (run_dir / "reaper.log").read_text()
        assert not (run_dir / ".running").exists()


@pytest.mark.timeout(120)
def test_a_run_whose_reaper_died_too_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    proc = start_run(store, seed=31)
    run_dir = run_dir_of(store)
    assert wait_for(lambda: run_namespaces(RunDir(run_dir).run_id), 20)
    reaper = [line for line in run_processes(run_dir) if "harness.reaper" in line]
    assert reaper, "no reaper guards the run"
    os.kill(int(reaper[0].split()[0]), signal.SIGKILL)  # both die: only the store remembers the run
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (run_dir / ".running").exists()
    later = subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", "run", "--store", str(store),
                            "--time-limit", "1", "--nemesis", "none", "--nodes", "3", "--seed", "1"],
                           capture_output=True, text=True, timeout=120)
    warnings = [line for line in later.stderr.splitlines() if line.startswith("warning:") and str(run_dir) in line]
    assert len(warnings) == 1 and f"splitbrain cleanup {run_dir}" in warnings[0], later.stderr
    cleanup = subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", "cleanup", str(run_dir)],
                             capture_output=True, text=True, timeout=120)
    assert cleanup.returncode == 0 and "namespace" in cleanup.stdout
    assert wait_for(lambda: not nothing_left(run_dir), 10), nothing_left(run_dir)
    assert not (run_dir / ".running").exists()


# -- kill and pause without cgroup v2 ------------------------------------------------------------------

DAEMON = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()  # leaves the process group the spawner made: only a cgroup still reaches it
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
while True:
    with open(sys.argv[2], "a") as f:
        f.write(".")
    time.sleep(0.05)
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif(freezer_mount() is None, reason="needs the cgroup v1 freezer mounted (hybrid or v1 host)")
def test_kill_and_pause_reach_a_setsid_daemon_through_the_v1_freezer(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CGROUP_ENV, "v1")
    with LocalCluster("sbv1test", 1, log_dir=tmp_path / "nodes") as cluster:
        assert isinstance(cluster.cgroup, FreezerCgroup)
        pid_file, ticks = tmp_path / "daemon.pid", tmp_path / "ticks"
        handle = cluster.remote("node1").spawn([sys.executable, "-c", DAEMON, str(pid_file), str(ticks)])
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10)
        daemon = int(pid_file.read_text())
        assert wait_for(lambda: ticks.exists() and ticks.stat().st_size > 3, 10)
        handle.pause()
        time.sleep(0.3)
        frozen_at = ticks.stat().st_size
        time.sleep(0.5)
        assert ticks.stat().st_size == frozen_at, "the paused daemon kept ticking"
        handle.resume()
        assert wait_for(lambda: ticks.stat().st_size > frozen_at, 5), "the resumed daemon did not tick"
        handle.kill()
        assert wait_for(lambda: process_gone(daemon), 10), "kill did not reach the daemon"
    assert "sbv1test" not in leftover_runs()


@pytest.mark.timeout(60)
def test_without_any_usable_cgroup_a_run_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", "run", "--store", str(tmp_path),
                           "--time-limit", "1", "--nemesis", "none", "--nodes", "3", "--seed", "1"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, CGROUP_ENV: "none"})
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if NO_CGROUP_WARNING in line] == [f"warning: {NO_CGROUP_WARNING}"]
