"""The third-party targets off local nodes: etcd, ZooKeeper and a load balancer (nginx, HAProxy) in front
of the internal store, each on Docker nodes (programs from the node image) and on SSH hosts (sshd inside
local nodes, test_ssh.py's fixture, each host with a file system of its own for the run's files, so a
config file written on this machine instead of on the host is missed). Each run is short (6 s, partitions
and kills); a safe configuration must come out valid, and etcd's serializable reads must still be caught
on Docker nodes.

Every run tears itself down (harness.test.run removes its containers and network even when it fails);
each test checks that no container or network of its runs is left.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from splitbrain.control.docker import run_resources
from splitbrain.control.images import build_image
from splitbrain.harness.run import RunOutcome
from splitbrain.harness.store import RunDir

from tests.integration import test_ssh as ssh_helpers
from tests.integration.helpers import needs_docker, needs_sshd_and, run
from tests.integration.test_etcd import PARTITIONS
from tests.integration.test_ssh import SSHNodes, _assert_nothing_left_on_the_hosts, _run_over_ssh, sshd_nodes

pytestmark = [pytest.mark.integration]

needs_sshd_and_etcd = needs_sshd_and("etcd")
needs_sshd_and_zookeeper = needs_sshd_and("java", "/usr/share/java/zookeeper.jar")
needs_sshd_and_balancers = needs_sshd_and("/usr/sbin/haproxy", "/usr/sbin/nginx")

ssh_nodes = ssh_helpers.ssh_nodes  # the fixture of test_ssh.py (sshd in three local nodes), by its name


@pytest.fixture(scope="module")
def node_image() -> str:
    tag, _ = build_image()  # a no-op when .ci/setup built it already
    return tag


def docker_run(store: Path, target: str, workload: str, seed: int, *, nodes: int = 3,
               schedule: list[dict] | None = None, target_opts: dict | None = None) -> RunOutcome:
    from splitbrain.harness.test import TestOptions as Test  # here, so pytest does not collect it

    test = Test(target=target, workload=workload, remote="docker", nemesis=("partition", "kill"), nodes=nodes,
                time_limit=6, nemesis_interval=1.5, seed=seed, store=str(store), schedule=schedule, rate=100,
                concurrency=10, recovery_s=1.5, target_opts=target_opts or {})
    outcome = run(test, console=False, out=io.StringIO())
    run_id = RunDir(outcome.run_dir.path).run_id
    assert run_resources(run_id) == ([], []), f"run {run_id} left containers or a network"
    return outcome


def faults_of(outcome: RunOutcome) -> set[str]:
    history = outcome.run_dir.path / "history.jsonl"
    ops = [json.loads(line) for line in history.read_text().splitlines()]
    return {op["f"] for op in ops if op["process"] == "nemesis" and op["type"] != "invoke" and not op.get("error")}


def assert_valid_and_busy(outcome: RunOutcome, min_ok: int) -> None:
    assert outcome.valid is True, outcome.results.get("explanation")
    ok = sum(stats["ok_count"] for stats in outcome.results["stats"]["by_f"].values())
    assert ok >= min_ok, outcome.results["stats"]  # the run really reached the system
    assert {"start-partition", "kill"} & faults_of(outcome), "no fault reached the nodes"


# -- Docker nodes -------------------------------------------------------------------------------------------

@needs_docker
@pytest.mark.docker
@pytest.mark.timeout(120)
def test_etcd_register_on_docker_nodes_is_valid(tmp_path: Path, node_image: str) -> None:
    outcome = docker_run(tmp_path, "etcd", "register", 1)
    assert_valid_and_busy(outcome, 50)
    assert (outcome.run_dir.path / "nodes" / "node1" / "etcd.log").stat().st_size > 0


@needs_docker
@pytest.mark.docker
@pytest.mark.timeout(240)
def test_etcd_serializable_reads_are_caught_on_docker_nodes(tmp_path: Path, node_image: str) -> None:
    """test_etcd.py's designed schedule (one member cut off, twice) on Docker nodes: the isolated member
    answers serializable reads from its stale state. Up to 4 seeds, as on local nodes."""
    verdicts = []
    for seed in range(1, 5):
        outcome = docker_run(tmp_path / str(seed), "etcd", "register", seed, schedule=PARTITIONS,
                             target_opts={"read": "serializable"})
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            assert outcome.results["linearizable"]["valid"] is False
            return
    pytest.fail(f"--read serializable was not caught on Docker nodes on seeds 1-4: {verdicts}")


@needs_docker
@pytest.mark.docker
@pytest.mark.timeout(120)
def test_zookeeper_register_on_docker_nodes_is_valid(tmp_path: Path, node_image: str) -> None:
    outcome = docker_run(tmp_path, "zookeeper", "register", 1, target_opts={"read": "sync"})
    assert_valid_and_busy(outcome, 50)
    assert (outcome.run_dir.path / "nodes" / "node1" / "server.log").stat().st_size > 0


@needs_docker
@pytest.mark.docker
@pytest.mark.timeout(120)
def test_nginx_set_on_docker_nodes_is_valid(tmp_path: Path, node_image: str) -> None:
    outcome = docker_run(tmp_path, "lb", "set", 1, nodes=4, target_opts={"lb": "nginx", "retry": "safe"})
    assert_valid_and_busy(outcome, 20)
    assert (outcome.run_dir.path / "nodes" / "node1" / "nginx.log").exists()


@needs_docker
@pytest.mark.docker
@pytest.mark.timeout(120)
def test_haproxy_unique_ids_on_docker_nodes_is_valid(tmp_path: Path, node_image: str) -> None:
    outcome = docker_run(tmp_path, "lb", "unique-ids", 1, nodes=4, target_opts={"lb": "haproxy", "retry": "safe"})
    assert_valid_and_busy(outcome, 20)
    assert (outcome.run_dir.path / "nodes" / "node1" / "haproxy.log").exists()


# -- SSH hosts ----------------------------------------------------------------------------------------------

@needs_sshd_and_etcd
@pytest.mark.timeout(150)
def test_etcd_register_over_ssh_is_valid(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    done, run_dir = _run_over_ssh(ssh_nodes, tmp_path / "runs", "--target", "etcd", "--workload", "register",
                                  "--nemesis", "partition,kill", "--seed", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert sum(stats["ok_count"] for stats in results["stats"]["by_f"].values()) >= 50
    for node in ssh_nodes.cluster.nodes:  # each member's log, downloaded from its host
        assert (run_dir / "nodes" / node / "etcd.log").stat().st_size > 0
    _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)


def assert_ssh_run_valid(ssh: SSHNodes, done: subprocess.CompletedProcess[str], run_dir: Path, min_ok: int,
                         log_name: str) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert sum(stats["ok_count"] for stats in results["stats"]["by_f"].values()) >= min_ok
    assert (run_dir / "nodes" / "node1" / log_name).stat().st_size > 0  # downloaded from its host
    _assert_nothing_left_on_the_hosts(ssh, run_dir)
    return results


@needs_sshd_and_zookeeper
@pytest.mark.timeout(150)
def test_zookeeper_register_over_ssh_is_valid(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    """zoo.cfg, myid and log4j.properties must be written on each host (its run directory is private to it)."""
    done, run_dir = _run_over_ssh(ssh_nodes, tmp_path / "runs", "--target", "zookeeper", "--workload", "register",
                                  "--nemesis", "partition,kill", "--seed", "1")
    assert_ssh_run_valid(ssh_nodes, done, run_dir, 50, "server.log")


@pytest.fixture
def ssh_nodes_4(tmp_path: Path):
    with sshd_nodes(tmp_path, 4) as nodes:
        yield nodes


@needs_sshd_and_balancers
@pytest.mark.timeout(150)
@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_a_balancer_set_over_ssh_is_valid(ssh_nodes_4: SSHNodes, tmp_path: Path, balancer: str) -> None:
    """The balancer's config (and nginx's temp dirs) on its host, a Raft server and a backend on each of
    the three others."""
    done, run_dir = _run_over_ssh(ssh_nodes_4, tmp_path / "runs", "--target", "lb", "--workload", "set",
                                  "--target-opt", f"lb={balancer}", "--nemesis", "partition,kill", "--seed", "1")
    assert_ssh_run_valid(ssh_nodes_4, done, run_dir, 20, f"{balancer}.log")
