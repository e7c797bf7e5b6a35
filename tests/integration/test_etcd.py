"""etcd (3.4, 3 members on local nodes) under `splitbrain run`: linearizable reads survive partitions,
serializable reads are caught reading stale data on a member cut off from the quorum, the lock workload
holds under every fault but clock skew, and the target's kill/start/primaries act on the real members.

Each run tears itself down (harness.test.run heals and removes everything, even when it fails); each
test checks that nothing of its runs is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness import test as harness_test
from splitbrain.harness.run import RunOutcome

from tests.integration.helpers import run

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)"),
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (.ci/setup)")]

NODES = 3


def assert_nothing_left(outcome: RunOutcome) -> None:
    run_id = outcome.run_dir.run_id
    assert run_id not in leftover_runs(), f"run {run_id} left namespaces or cgroups"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"sb-{run_id}-" not in netns
    etcds = subprocess.run(["pgrep", "-f", str(outcome.run_dir.path)], capture_output=True, text=True).stdout
    assert not etcds.strip(), f"etcd members of run {run_id} still running: {etcds}"


def isolate_one_member(times: list[tuple[float, float]]) -> list[dict]:
    """Cut one member (chosen by the seed) off from the others, again and again; its clients still
    reach it, so whatever it answers on its own is what they see."""
    steps: list[dict] = []
    for start, stop in times:
        steps += [{"at_s": start, "f": "start-partition", "value": "one"},
                  {"at_s": stop, "f": "stop-partition", "value": None}]
    return steps


PARTITIONS = isolate_one_member([(1.0, 3.5), (4.0, 6.5)])


def etcd_run(store: Path, seed: int, *, read: str = "linearizable", workload: str = "register",
             nemesis: tuple[str, ...] = ("partition",), schedule: list[dict] | None = None,
             time_limit: float = 7.0, concurrency: int = 10) -> RunOutcome:
    test = harness_test.TestOptions(target="etcd", workload=workload, nemesis=nemesis, nodes=NODES, time_limit=time_limit,
                nemesis_interval=1.5, seed=seed, store=str(store), schedule=schedule, rate=150,
                concurrency=concurrency, recovery_s=1.5, target_opts={"read": read})
    return run(test)


@pytest.mark.timeout(90)
def test_linearizable_reads_are_valid_under_partitions(tmp_path: Path) -> None:
    outcome = etcd_run(tmp_path, 1, schedule=PARTITIONS)
    assert_nothing_left(outcome)
    assert outcome.valid is True, outcome.results.get("explanation")
    by_f = outcome.results["stats"]["by_f"]
    assert by_f["read"]["ok_count"] > 30 and by_f["write"]["ok_count"] > 15  # the run really did something
    log = outcome.run_dir.path / "nodes" / "node1" / "etcd.log"
    assert log.stat().st_size > 0
    harness_log = (outcome.run_dir.path / "harness.log").read_text()
    assert "nemesis start-partition" in harness_log and "nemesis stop-partition done" in harness_log
    assert "HTTP Request" not in harness_log  # httpx's line per request stays out of the harness's log


@pytest.mark.timeout(240)
def test_serializable_reads_are_caught_on_an_isolated_member(tmp_path: Path) -> None:
    """The known-unsafe configuration: a member cut off from the quorum answers serializable reads from
    its own, stale, state. Caught on each of the seeds tried while writing this test (6 of 6); up to 4
    seeds are allowed because which member is isolated, and when, is up to the seed and the timing."""
    verdicts = []
    for seed in range(1, 5):
        outcome = etcd_run(tmp_path, seed, read="serializable", schedule=PARTITIONS)
        assert_nothing_left(outcome)
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            assert "linearizable" in outcome.results and outcome.results["linearizable"]["valid"] is False
            assert outcome.results["explanation"]
            return
    pytest.fail(f"--read serializable was not caught under partitions on seeds 1-4: {verdicts}")


@pytest.mark.timeout(120)
def test_lock_is_safe_under_every_fault_but_clock(tmp_path: Path) -> None:
    """Partitions, crashes, pauses and packet loss on etcd's lease + lock API with the lock key's create
    revision as fencing token. Mutual exclusion holds once leases are accounted for (a holder's lease
    runs out: that is what the fence is for), and the fence never accepts an older token."""
    outcome = etcd_run(tmp_path, 1, workload="lock", nemesis=("partition", "kill", "pause", "packet"),
                       time_limit=10, concurrency=5)
    assert_nothing_left(outcome)
    assert outcome.valid is True, outcome.results.get("explanation")
    lock = outcome.results["lock"]
    assert lock["mutual_exclusion"]["grants"] >= 2 and lock["fencing"]["fenced_writes"] >= 2
    history = [json.loads(line) for line in (outcome.run_dir.path / "history.jsonl").read_text().splitlines()]
    faults = {op["f"] for op in history if op["process"] == "nemesis" and op["type"] != "invoke"}
    assert {"start-partition", "kill", "start", "pause", "resume", "start-packet"} <= faults


@pytest.mark.timeout(60)
def test_kill_start_and_primaries_act_on_the_members(tmp_path: Path) -> None:
    """The target on its own: the leader named by primaries() is killed, another member takes over,
    and the killed member restarts from its data directory and serves again."""
    from splitbrain.control.local import LocalCluster
    from splitbrain.control.spawn import local_spawner
    from splitbrain.targets.etcd.target import EtcdTarget

    run_id = f"etcdkill-{os.getpid()}"
    with LocalCluster(run_id, NODES, log_dir=tmp_path / "nodes") as cluster:
        target = EtcdTarget(cluster.addresses, tmp_path / "data", local_spawner(cluster, None))
        try:
            for node in cluster.nodes:
                target.setup(None, node)
            target.wait_ready(None, 30)
            (leader,) = target.primaries(None)
            target.kill(None, leader)
            assert target.status(leader) is None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and target.primaries(None) in ([], [leader]):
                time.sleep(0.1)
            new_leaders = target.primaries(None)
            assert len(new_leaders) == 1 and new_leaders != [leader]
            target.start(None, leader)
            target.wait_ready(None, 30)  # every member, the restarted one too, serves a linearizable read
            assert (tmp_path / "data" / leader / "member").is_dir()
        finally:
            for node in cluster.nodes:
                target.teardown(None, node)
    assert run_id not in leftover_runs()
