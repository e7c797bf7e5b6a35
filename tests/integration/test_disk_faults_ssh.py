"""Disk faults against the internal Raft store on SSH nodes (an sshd in each local node, as
test_ssh.py sets them up): the damage is done on the host through SSH with the host's python3, and the
store answers as on local and Docker nodes. lose-unfsynced is refused there in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.helpers import needs_sshd_and, run
from tests.integration.test_disk_faults import history, nemesis_done, node_log, ok_ops_on
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
    schedule = [{"at_s": 3.0, "f": "start-corrupt", "value": {"nodes": ["node2"], "mode": "zero", "offset": 40,
                                                               "length": 16, "seed": 1}},
                {"at_s": 6.0, "f": "stop-corrupt", "value": None}]
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("corrupt",), schedule)
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-corrupt")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node2" and fault["offset"] == 40 and fault["file"].endswith("/node2/wal")
    refused = re.search(r"cannot start: damaged log: (\S+): byte offset (\d+)", node_log(outcome, "node2"))
    assert refused and refused.group(1) == fault["file"] and int(refused.group(2)) <= 40, "node2 started on it"
    (stopped,) = nemesis_done(ops, "stop-corrupt")
    assert stopped["value"]["restored"] and not stopped["value"]["kept"]
    assert ok_ops_on(ops, "node2", stopped["time"]) > 0, "node2 did not serve again once its log was restored"


def test_torn_tail_on_ssh_is_cut_and_the_node_rejoins(ssh_nodes, tmp_path):  # noqa: F811
    schedule = [{"at_s": 3.0, "f": "start-truncate", "value": {"nodes": ["node1"], "length": 3, "seed": 2}},
                {"at_s": 5.0, "f": "stop-truncate", "value": None}]
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("truncate",), schedule)
    assert outcome.valid is True, outcome.results
    ops = history(outcome)
    (started,) = nemesis_done(ops, "start-truncate")
    assert not started.get("error"), started
    (fault,) = started["value"]["faults"]
    assert fault["node"] == "node1" and fault["length"] == 3 and fault["file"].endswith("/node1/wal")
    torn = re.search(r"truncating a torn tail of (\d+) bytes at byte offset (\d+)", node_log(outcome, "node1"))
    assert torn and int(torn.group(2)) < fault["offset"], "node1 did not cut its torn tail"
    assert ok_ops_on(ops, "node1", started["time"]) > 0, "node1 did not rejoin"


def test_lose_unfsynced_on_ssh_nodes_is_refused_in_one_line(ssh_nodes, tmp_path):  # noqa: F811
    schedule = [{"at_s": 2.0, "f": "start-lose-unfsynced", "value": {"nodes": ["node1"]}}]
    outcome = ssh_disk_run(ssh_nodes, tmp_path, ("lose-unfsynced",), schedule)
    assert outcome.exit_code == 3, outcome.results
    assert re.fullmatch(r"lose-unfsynced runs on local and Docker nodes \(.*\); these nodes are SSHRemote", outcome.error)
