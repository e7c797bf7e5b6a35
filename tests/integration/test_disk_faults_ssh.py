"""Disk faults against the internal Raft store on SSH nodes (an sshd in each local node, as
test_ssh.py sets them up): the damage is done on the host through SSH with the host's python3, and the
store answers as on local and Docker nodes. For lose-unfsynced the FUSE daemon runs on the host, shipped
there through SSH; each sshd has a mount namespace of its own, so its mounts are the host's, not this
machine's."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.disk_checks import (
    CORRUPT_NODE2,
    TRUNCATE_NODE1,
    assert_corrupt_node2_kept_out_then_back,
    assert_torn_tail_of_node1_cut_and_rejoined,
    history,
    nemesis_done,
)
from tests.integration.helpers import needs_sshd_and, run
from tests.integration.test_ssh import (  # noqa: F401 - ssh_nodes: the fixture
    SSHNodes,
    _assert_nothing_left_on_the_hosts,
    ssh_nodes,
    ssh_run_command,
)

pytestmark = [pytest.mark.integration, needs_sshd_and(), pytest.mark.timeout(240)]


def ssh_disk_run(nodes: SSHNodes, tmp_path: Path, nemesis: tuple[str, ...], schedule: list[dict],
                 bugs: tuple[str, ...] = ()):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target="raft", workload="register", nemesis=nemesis, nodes=3, remote="ssh",
                       ssh_hosts=tuple(nodes.hosts_option.split(",")), ssh_key=str(nodes.key_file),
                       ssh_known_hosts=str(nodes.known_hosts), ssh_dir=str(nodes.host_dir),
                       time_limit=8.0, seed=16, bugs=bugs, store=str(tmp_path / "runs"), schedule=schedule,
                       rate=80, concurrency=6, recovery_s=2.0)
    return run(test, console=False)


def test_corruption_before_the_tail_on_ssh_keeps_the_node_out_and_the_cluster_valid(ssh_nodes, tmp_path):  # noqa: F811
    assert_corrupt_node2_kept_out_then_back(ssh_disk_run(ssh_nodes, tmp_path, ("corrupt",), CORRUPT_NODE2))


def test_torn_tail_on_ssh_is_cut_and_the_node_rejoins(ssh_nodes, tmp_path):  # noqa: F811
    assert_torn_tail_of_node1_cut_and_rejoined(ssh_disk_run(ssh_nodes, tmp_path, ("truncate",), TRUNCATE_NODE1))


POWER_CUT_ALL = [{"at_s": 4.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1", "node2", "node3"]}},
                 {"at_s": 5.5, "f": "stop-lose-unfsynced", "value": None}]


def host_mounts(nodes: SSHNodes, node: str) -> str:
    remote = nodes.remote(node)
    try:
        return remote.exec(["cat", "/proc/self/mounts"]).stdout
    finally:
        remote.close()


def test_a_power_cut_of_every_ssh_host_loses_nothing_acknowledged_and_leaves_nothing(ssh_nodes, tmp_path):  # noqa: F811
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("lose-unfsynced",), POWER_CUT_ALL)
    assert outcome.valid is True, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    assert cut["value"]["nodes"] == ["node1", "node2", "node3"] and not cut.get("error"), cut
    # The daemon ran on each host (its log came back with the node's logs), not on this machine.
    for node in ssh_nodes.cluster.nodes:
        assert (outcome.run_dir.path / "nodes" / node / "volatile-fs.log").exists()
        assert "splitbrain-volatile" not in host_mounts(ssh_nodes, node), f"a volatile mount was left on {node}"
    _assert_nothing_left_on_the_hosts(ssh_nodes, outcome.run_dir.path)


def test_bug_fsync_lies_is_caught_by_a_power_cut_of_ssh_hosts(ssh_nodes, tmp_path):  # noqa: F811
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("lose-unfsynced",), POWER_CUT_ALL, bugs=("fsync-lies",))
    assert outcome.valid is False, outcome.results
    (cut,) = nemesis_done(history(outcome), "start-lose-unfsynced")
    assert cut["value"]["lost"], "the power cut lost no write of a store that never fsyncs"


def test_a_host_without_fuse_is_refused_in_one_line_before_anything_stops(ssh_nodes, tmp_path):  # noqa: F811
    """node2's /dev/fuse is hidden (a plain file bound over it, in that host's own mount namespace)."""
    remote = ssh_nodes.remote("node2")
    try:
        remote.exec(["sh", "-c", "touch /run/no-fuse && mount --bind /run/no-fuse /dev/fuse"])
        schedule = [{"at_s": 2.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1"]}}]
        outcome = ssh_disk_run(ssh_nodes, tmp_path, ("lose-unfsynced",), schedule)
    finally:
        remote.exec(["umount", "/dev/fuse"])
        remote.close()
    assert outcome.exit_code == 3, outcome.results
    assert outcome.error == ("lose-unfsynced on node2: the host lacks /dev/fuse "
                             "(Debian: apt-get install python3 fuse3)"), outcome.error
    _assert_nothing_left_on_the_hosts(ssh_nodes, outcome.run_dir.path)


@pytest.mark.parametrize("clean_up", ["down", "reaper"])
def test_a_killed_daemons_dead_mount_is_removed_with_the_run(ssh_nodes, tmp_path, clean_up):  # noqa: F811
    """SIGKILL leaves the mount behind with no one serving it (every access fails with ENOTCONN), which
    rm -rf cannot remove: the run's clean-up (down) and the reaper of a dead run (teardown_run) unmount it."""
    from splitbrain.control.ssh import SSHCluster, parse_ssh_hosts, teardown_run
    from splitbrain.nemesis.power import NodeVolatileMount

    def cluster():
        return SSHCluster("vfskill", parse_ssh_hosts(ssh_nodes.hosts_option), log_dir=tmp_path / "logs",
                          key_file=str(ssh_nodes.key_file), known_hosts=str(ssh_nodes.known_hosts),
                          base_dir=str(ssh_nodes.host_dir)).up()

    first = cluster()
    remote = first.remote("node1")
    data = f"{first.data_root}/node1"
    mount = NodeVolatileMount(remote, data)
    mount.check_host()
    mount.mount()
    assert remote.exec(["sh", "-c", f"echo x > {data}/file && cat {data}/file"]).stdout == "x\n"
    assert mount.process is not None
    mount.process.kill(signal.SIGKILL)
    assert "not connected" in remote.exec(["ls", data]).stderr  # the dead mount
    if clean_up == "down":
        first.down()
    else:
        for r in first.remotes.values():  # the harness died: nothing of the run was cleaned up
            r.close()
        teardown_run(cluster())
    assert "splitbrain-volatile" not in host_mounts(ssh_nodes, "node1")
    check = ssh_nodes.remote("node1")
    try:
        assert check.exec(["test", "-e", first.root]).rc == 1, f"{first.root} is left on node1"
    finally:
        check.close()


@pytest.mark.timeout(180)
def test_kill_9_of_an_ssh_run_with_power_cuts_leaves_nothing_on_the_hosts(ssh_nodes, tmp_path):  # noqa: F811
    """The harness dies while every host has its volatile mount: the run's reaper kills the daemons with
    the target's processes, unmounts their (now dead) mounts and removes the run's directory."""
    import os
    import subprocess

    from tests.integration.helpers import wait_for

    store = tmp_path / "runs"
    cmd = ssh_run_command(ssh_nodes, store, "--time-limit", "30", "--nemesis", "lose-unfsynced", "--seed", "3")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "HOME": str(tmp_path)})
    try:
        assert wait_for(lambda: all("splitbrain-volatile" in host_mounts(ssh_nodes, n) for n in ssh_nodes.cluster.nodes),
                        90), "the volatile mounts never came up on the hosts"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    run_dir = (store / "latest").resolve()
    assert wait_for(lambda: not any("splitbrain-volatile" in host_mounts(ssh_nodes, n) for n in ssh_nodes.cluster.nodes),
                    30), "a volatile mount outlived the run"
    assert wait_for(lambda: (run_dir / "reaper.log").exists() and not (run_dir / ".running").exists(), 30)
    _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)
