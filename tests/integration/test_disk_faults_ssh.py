"""Disk faults against the internal Raft store on SSH nodes (an sshd in each local node, as
test_ssh.py sets them up): the damage is done on the host through SSH with the host's python3, and the
store answers as on local and Docker nodes. lose-unfsynced is refused there in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.disk_checks import (
    CORRUPT_NODE2,
    TRUNCATE_NODE1,
    assert_corrupt_node2_kept_out_then_back,
    assert_torn_tail_of_node1_cut_and_rejoined,
)
from tests.integration.helpers import needs_sshd_and, run
from tests.integration.test_ssh import SSHNodes, ssh_nodes  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, needs_sshd_and(), pytest.mark.timeout(240)]


def ssh_disk_run(nodes: SSHNodes, tmp_path: Path, nemesis: tuple[str, ...], schedule: list[dict]):
    from splitbrain.harness.test import TestOptions  # here, so pytest does not collect it

    test = TestOptions(target="raft", workload="register", nemesis=nemesis, nodes=3, remote="ssh",
                       ssh_hosts=tuple(nodes.hosts_option.split(",")), ssh_key=str(nodes.key_file),
                       ssh_known_hosts=str(nodes.known_hosts), ssh_dir=str(nodes.host_dir),
                       time_limit=8.0, seed=16, store=str(tmp_path / "runs"), schedule=schedule,
                       rate=80, concurrency=6, recovery_s=2.0)
    return run(test, console=False)


def test_corruption_before_the_tail_on_ssh_keeps_the_node_out_and_the_cluster_valid(ssh_nodes, tmp_path):  # noqa: F811
    assert_corrupt_node2_kept_out_then_back(ssh_disk_run(ssh_nodes, tmp_path, ("corrupt",), CORRUPT_NODE2))


def test_torn_tail_on_ssh_is_cut_and_the_node_rejoins(ssh_nodes, tmp_path):  # noqa: F811
    assert_torn_tail_of_node1_cut_and_rejoined(ssh_disk_run(ssh_nodes, tmp_path, ("truncate",), TRUNCATE_NODE1))


def test_lose_unfsynced_on_ssh_nodes_is_refused_in_one_line(ssh_nodes, tmp_path):  # noqa: F811
    schedule = [{"at_s": 2.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1"]}}]
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("lose-unfsynced",), schedule)
    assert outcome.exit_code == 3, outcome.results
    assert re.fullmatch(r"lose-unfsynced runs on local and Docker nodes \(.*\); these nodes are SSHRemote", outcome.error)
