"""ZooKeeper (3 local nodes) under faults: sync reads are linearizable under partitions and crashes, local
reads are caught stale, and so are sync reads on a leader resumed after a pause (ZOOKEEPER-1675); the lock
recipe with fencing tokens keeps the fenced resource safe, and nothing of a run remains after it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs

from tests.integration.helpers import run

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)"),
              pytest.mark.skipif(shutil.which("java") is None or not Path("/usr/share/java/zookeeper.jar").exists(),
                                 reason="needs ZooKeeper and a JRE (apt-get install zookeeper default-jre-headless)")]

NODES = ["node1", "node2", "node3"]
# node1 alone, the other two together. With three fresh servers the highest id (node3) is elected, so
# node1 is a follower: cut off, it keeps serving its clients until it notices the leader is gone
# (syncLimit x tickTime, about a second), while the majority goes on committing writes.
ISOLATE_NODE1 = {"node1": ["node2", "node3"], "node2": ["node1"], "node3": ["node1"]}


def isolate_node1(times: list[tuple[float, float]]) -> list[dict]:
    steps: list[dict] = []
    for start, stop in times:
        steps += [{"at_s": start, "f": "start-partition", "value": ISOLATE_NODE1},
                  {"at_s": stop, "f": "stop-partition", "value": None}]
    return steps


def run_zookeeper(store: Path, *, seed: int, read: str = "sync", workload: str = "register",
                  nemesis: tuple[str, ...] = ("partition",), schedule: list[dict] | None = None,
                  time_limit: float = 8.0):
    from splitbrain.harness.test import TestOptions as Test  # here, so pytest does not collect it

    test = Test(target="zookeeper", workload=workload, nemesis=nemesis, nodes=3, time_limit=time_limit,
                nemesis_interval=1.5, seed=seed, store=str(store), schedule=schedule, rate=150, concurrency=12,
                target_opts={"read": read} if workload == "register" else {})
    return run(test, console=False)


def assert_nothing_left(run_dir: Path) -> None:
    from splitbrain.harness.store import RunDir

    run_id = RunDir(run_dir).run_id
    assert run_id not in leftover_runs(), f"run {run_id} left namespaces or cgroups"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"sb-{run_id}-" not in netns
    java = subprocess.run(["pgrep", "-f", str(run_dir / "data")], capture_output=True, text=True).stdout
    assert not java.strip(), f"ZooKeeper processes of the run are still running: {java}"


def ok_counts(results: dict) -> dict[str, int]:
    return {f: v["ok_count"] for f, v in results["stats"]["by_f"].items()}


@pytest.mark.timeout(120)
def test_sync_reads_are_linearizable_when_a_follower_is_cut_off(tmp_path: Path) -> None:
    outcome = run_zookeeper(tmp_path, seed=1, read="sync", schedule=isolate_node1([(1.0, 3.0), (4.0, 6.0)]))
    assert_nothing_left(outcome.run_dir.path)
    assert outcome.valid is True, outcome.results.get("explanation")
    ok = ok_counts(outcome.results)
    assert ok["read"] > 100 and ok["write"] > 50 and ok["cas"] > 5  # the run really did something
    history = [json.loads(line) for line in (outcome.run_dir.path / "history.jsonl").read_text().splitlines()]
    partitions = [op for op in history if op["f"] == "start-partition" and op["type"] != "invoke"]
    assert len(partitions) == 2 and all("error" not in op for op in partitions)
    assert "QuorumPeer" in (outcome.run_dir.path / "nodes" / "node1" / "server.log").read_text()


@pytest.mark.timeout(120)
def test_sync_reads_are_linearizable_under_partitions_and_crashes(tmp_path: Path) -> None:
    """No pauses here: a leader paused past its term answers sync from its own stale state for a moment
    after it resumes (sync is not a quorum operation: ZOOKEEPER-1675), which splitbrain does catch on
    some seeds (see the README)."""
    outcome = run_zookeeper(tmp_path, seed=3, read="sync", nemesis=("partition", "kill"))
    assert_nothing_left(outcome.run_dir.path)
    assert outcome.valid is True, outcome.results.get("explanation")
    assert ok_counts(outcome.results)["read"] > 50


@pytest.mark.timeout(400)
def test_local_reads_are_caught_stale_when_a_follower_is_cut_off(tmp_path: Path) -> None:
    """ZooKeeper promises sequential consistency, not linearizable reads: without sync, a cut-off
    follower answers reads that miss writes the majority acknowledged, in the second or so before it
    notices it lost its leader. Measured with three cuts: caught on 6 of seeds 1-8 (two cuts: 4 of 8;
    timing varies run to run); eight seeds bound the test (all eight missing: under 1 in 10,000)."""
    schedule = isolate_node1([(1.0, 3.0), (4.0, 6.0), (7.0, 9.0)])
    verdicts = []
    for seed in range(1, 9):
        outcome = run_zookeeper(tmp_path, seed=seed, read="local", schedule=schedule, time_limit=10.0)
        assert_nothing_left(outcome.run_dir.path)
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            assert "cannot linearize" in outcome.results["explanation"]
            assert "read" in outcome.results["explanation"]
            return
    pytest.fail(f"stale local reads were not caught on seeds 1-8: {verdicts}")


@pytest.mark.timeout(300)
def test_sync_reads_are_caught_stale_on_a_leader_resumed_after_a_pause(tmp_path: Path) -> None:
    """sync is not a quorum operation in ZooKeeper 3.8 (ZOOKEEPER-1675): a leader paused while the others
    elect a new one and commit writes answers sync and get from its own stale state for a moment after
    it resumes, before it notices it lost its quorum. Measured: caught on 6 of seeds 1-8 with three
    2 s pauses; five seeds bound the test (all five missing: about 1 in 1000)."""
    schedule: list[dict] = []
    for start in (1.0, 4.0, 7.0):
        schedule += [{"at_s": start, "f": "pause", "value": "primaries"},
                     {"at_s": start + 2.0, "f": "resume", "value": None}]
    verdicts = []
    for seed in range(1, 6):
        outcome = run_zookeeper(tmp_path, seed=seed, read="sync", nemesis=("pause",), schedule=schedule,
                                time_limit=10.0)
        assert_nothing_left(outcome.run_dir.path)
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            assert "cannot linearize" in outcome.results["explanation"]
            return
    pytest.fail(f"stale sync reads on a resumed leader were not caught on seeds 1-5: {verdicts}")


@pytest.mark.timeout(120)
def test_lock_with_fencing_is_safe_under_partitions(tmp_path: Path) -> None:
    outcome = run_zookeeper(tmp_path, seed=2, workload="lock", nemesis=("partition",))
    assert_nothing_left(outcome.run_dir.path)
    assert outcome.valid is True, outcome.results.get("explanation")
    ok = ok_counts(outcome.results)
    assert ok["acquire"] >= 3 and ok["write"] >= 3 and ok.get("release", 0) >= 1
    lock = outcome.results["lock"]
    assert lock["fencing"]["fenced_writes"] >= 3
