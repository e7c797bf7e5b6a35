"""Disk faults against the internal Raft store on Docker nodes: the damage goes through the node's
Remote (`docker exec` of the node's python3 on its bind-mounted data directory), and the store answers
it as it does on local nodes. The schedules are aimed by hand, as in test_disk_faults.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from splitbrain.control.docker import run_resources
from splitbrain.control.images import build_image

from tests.integration.disk_checks import (
    CORRUPT_NODE2,
    TRUNCATE_NODE1,
    assert_corrupt_node2_kept_out_then_back,
    assert_torn_tail_of_node1_cut_and_rejoined,
    history,
    nemesis_done,
)
from tests.integration.helpers import needs_docker, run

pytestmark = [pytest.mark.integration, pytest.mark.docker, needs_docker, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def node_image() -> str:
    tag, _ = build_image()  # a no-op when .ci/setup built it already
    return tag


def docker_disk_run(tmp_path: Path, nemesis: tuple[str, ...], schedule: list[dict], bugs: tuple[str, ...] = ()):
    from splitbrain.harness.store import RunDir
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target="raft", workload="register", nemesis=nemesis, nodes=3, remote="docker",
                       time_limit=8.0, seed=16, bugs=bugs, store=str(tmp_path / "runs"), schedule=schedule,
                       rate=100, concurrency=6, recovery_s=2.0)
    outcome = run(test, console=False)
    assert run_resources(RunDir(outcome.run_dir.path).run_id) == ([], []), "the run left containers or a network"
    return outcome


def test_corruption_before_the_tail_on_docker_keeps_the_node_out_and_the_cluster_valid(tmp_path, node_image):
    assert_corrupt_node2_kept_out_then_back(docker_disk_run(tmp_path, ("corrupt",), CORRUPT_NODE2))


def test_torn_tail_on_docker_is_cut_and_the_node_rejoins(tmp_path, node_image):
    assert_torn_tail_of_node1_cut_and_rejoined(docker_disk_run(tmp_path, ("truncate",), TRUNCATE_NODE1))


POWER_CUT_ALL = [{"at_s": 4.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1", "node2", "node3"]}},
                 {"at_s": 5.5, "f": "stop-lose-unfsynced", "value": None}]


def volatile_mounts_on_the_host(outcome) -> list[str]:
    """The run's volatile file systems mounted on this machine: none (they live in the containers'
    mount namespaces and go with them)."""
    with open("/proc/mounts") as mounts:
        return [line for line in mounts if "splitbrain-volatile" in line and str(outcome.run_dir.path) in line]


def test_a_power_cut_of_every_docker_node_loses_nothing_acknowledged(tmp_path, node_image):
    outcome = docker_disk_run(tmp_path, ("lose-unfsynced",), POWER_CUT_ALL)
    assert outcome.valid is True, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    assert cut["value"]["nodes"] == ["node1", "node2", "node3"] and not cut.get("error"), cut
    assert volatile_mounts_on_the_host(outcome) == []


def test_bug_fsync_lies_is_caught_by_a_power_cut_on_docker(tmp_path, node_image):
    outcome = docker_disk_run(tmp_path, ("lose-unfsynced",), POWER_CUT_ALL, bugs=("fsync-lies",))
    assert outcome.valid is False, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    lost = cut["value"]["lost"]
    assert any(w["node"] == "node1" and w["file"].endswith("/node1/wal") and w["length"] > 0 for w in lost), lost


def volatile_daemons(run_dir: Path) -> list[int]:
    """The pids of this machine's volatile file system daemons serving ``run_dir``'s nodes."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"splitbrain.control.volatile_fs" in cmdline and any(str(run_dir).encode() in a for a in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.timeout(180)
def test_kill_9_of_a_docker_run_with_power_cuts_leaves_no_daemon_and_no_container(tmp_path, node_image):
    """The daemons run in sessions of their own (a signal to the harness's group does not reach them):
    they end with the harness (each unmounts in its container) or with the container the reaper removes."""
    import os
    import signal
    import subprocess
    import sys

    from splitbrain.harness.store import RunDir

    from tests.integration.helpers import process_gone, wait_for

    store = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "splitbrain.harness.cli", "run", "--remote", "docker", "--nodes", "3",
                             "--time-limit", "30", "--nemesis", "lose-unfsynced", "--seed", "3", "--store", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert wait_for(lambda: (store / "latest" / "test.json").exists(), 60)
    run_dir = (store / "latest").resolve()
    assert wait_for(lambda: len(volatile_daemons(run_dir)) == 3, 60), "the volatile mounts never started"
    daemons = volatile_daemons(run_dir)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = RunDir(run_dir).run_id
    assert wait_for(lambda: run_resources(run_id) == ([], []), 20), run_resources(run_id)
    assert wait_for(lambda: all(process_gone(pid) for pid in daemons), 20), volatile_daemons(run_dir)
