"""Docker nodes: the node image, containers on an --internal network that the host reaches, processes
started with `docker exec` that kill/pause/resume reach, a full run of the Raft store (valid; its stale-read
bug caught), and nothing of a run left after down() or `splitbrain cleanup`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from splitbrain.control.docker import NODE_IMPORT_ROOT, DockerCluster, container_state, run_resources
from splitbrain.control.errors import ConfigError
from splitbrain.control.images import NODE_RECIPE, build_image, built_images, mirror_from_sources
from splitbrain.harness.cli import main

from tests.integration.helpers import needs_docker, run, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def node_image() -> str:
    tag, _ = build_image()  # a no-op when .ci/setup built it already
    return tag


@pytest.fixture
def cluster(tmp_path: Path, node_image: str, request: pytest.FixtureRequest) -> Iterator[DockerCluster]:
    run_id = f"dt-{request.node.name[:20].replace('_', '-')}-{os.getpid()}"
    nodes = DockerCluster(run_id, 3, tmp_path / "nodes", data_root=tmp_path / "data", image=node_image)
    try:
        yield nodes.up()
    finally:
        nodes.down()
        assert run_resources(run_id) == ([], []), f"run {run_id} left containers or a network"


def wait_for_http(url: str, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return answer.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the image ----------------------------------------------------------------------------------------

def test_mirror_is_the_first_uris_line_of_the_sources_file() -> None:
    text = "Types: deb\n# a comment\nURIs: http://mirror.example/debian http://other\nSuites: bookworm\n"
    assert mirror_from_sources(text) == "http://mirror.example/debian"
    assert mirror_from_sources("Types: deb\n") is None


def test_image_tag_changes_with_the_recipe_and_only_with_it() -> None:
    assert NODE_RECIPE.tag.startswith("splitbrain-node:") and len(NODE_RECIPE.tag.split(":")[1]) == 12
    assert replace(NODE_RECIPE).tag == NODE_RECIPE.tag
    assert replace(NODE_RECIPE, packages=NODE_RECIPE.packages + ("nginx",)).tag != NODE_RECIPE.tag
    assert replace(NODE_RECIPE, steps_version=NODE_RECIPE.steps_version + 1).tag != NODE_RECIPE.tag


@needs_docker
@pytest.mark.timeout(600)
def test_build_is_a_noop_when_the_recipe_is_unchanged(node_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_image() == (node_image, False)
    assert any(image.tag == node_image and image.current for image in built_images())
    assert main(["images", "list"]) == 0
    assert f"{node_image}" in capsys.readouterr().out


# -- nodes --------------------------------------------------------------------------------------------

@needs_docker
@pytest.mark.timeout(120)
def test_containers_are_confined_and_the_host_reaches_them(cluster: DockerCluster) -> None:
    network = json.loads(subprocess.run(["docker", "network", "inspect", cluster.network],
                                        capture_output=True, text=True, check=True).stdout)[0]
    assert network["Internal"] is True
    for node, container in cluster.containers.items():
        info = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                                         check=True).stdout)[0]
        assert info["HostConfig"]["Privileged"] is False
        assert [c.removeprefix("CAP_") for c in info["HostConfig"]["CapAdd"]] == ["NET_ADMIN"]
        assert info["Config"]["Cmd"] == ["sleep", "infinity"]
        assert info["NetworkSettings"]["Networks"][cluster.network]["IPAddress"] == cluster.addresses[node]
    remote = cluster.remote("node1")
    # splitbrain is there, read-only, and the node's Python imports it; iptables works (NET_ADMIN).
    assert remote.exec(["test", "-f", f"{NODE_IMPORT_ROOT}/splitbrain/harness/cli.py"]).ok
    assert not remote.exec(["touch", f"{NODE_IMPORT_ROOT}/splitbrain/written-from-a-node"]).ok
    assert remote.exec(["env", *(f"{k}={v}" for k, v in remote.python_env.items()), remote.python, "-c",
                        "import splitbrain.control.clockpatch"]).ok
    assert remote.exec(["iptables", "-w", "-L", "INPUT"]).ok
    # The nodes reach each other, and the host reaches a server in a node.
    assert remote.exec(["python3", "-c", "import socket,sys; socket.create_connection((sys.argv[1], 9), 2)",
                        cluster.addresses["node2"]]).stderr.endswith("Connection refused\n")
    server = remote.spawn(["python3", "-m", "http.server", "--bind", cluster.addresses["node1"], "9000"],
                          log="http.log")
    assert wait_for_http(f"http://{cluster.addresses['node1']}:9000/") == 200
    server.kill()
    assert (cluster.log_dir / "node1" / "http.log").read_text().count("GET /") >= 1


@needs_docker
@pytest.mark.timeout(120)
def test_kill_pause_and_resume_reach_the_process_not_the_container(cluster: DockerCluster) -> None:
    remote = cluster.remote("node2")
    # A child that the process starts is in its group, so kill reaches it too.
    process = remote.spawn(["sh", "-c", "sleep 1000 & echo started; wait"], env={"SB_MARK": "x"}, log="s.log")
    assert process.alive()
    process.pause()
    states = remote.exec(["ps", "-o", "stat=", "-g", str(process.pgid)]).stdout.split()
    assert states and all(s.startswith("T") for s in states), states
    process.resume()
    states = remote.exec(["ps", "-o", "stat=", "-g", str(process.pgid)]).stdout.split()
    assert states and not any(s.startswith("T") for s in states), states
    process.kill(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert not process.alive()
    assert remote.exec(["pgrep", "-x", "sleep", "-g", str(process.pgid)]).stdout == ""
    state = container_state(cluster.containers["node2"])
    assert state is not None and state["Running"] is True  # the process died, not the node


@needs_docker
@pytest.mark.timeout(120)
def test_down_is_idempotent(cluster: DockerCluster) -> None:
    cluster.down()
    assert run_resources(cluster.run_id) == ([], [])
    cluster.down()


@needs_docker
@pytest.mark.timeout(120)
def test_cleanup_removes_what_a_killed_run_left(tmp_path: Path, node_image: str) -> None:
    from splitbrain.harness.store import RunDir

    run_dir = tmp_path / "raft-register" / "20260101T000000.000"
    run_dir.mkdir(parents=True)
    (run_dir / "test.json").write_text(json.dumps({"remote": "docker"}))
    run_id = RunDir(run_dir).run_id
    left = DockerCluster(run_id, 2, run_dir / "nodes", image=node_image)
    try:
        left.up()  # ... and never taken down: the run was killed
        assert run_resources(run_id) != ([], [])
        assert main(["cleanup", str(run_dir)]) == 0
        assert run_resources(run_id) == ([], [])
        assert main(["cleanup", str(run_dir)]) == 0  # nothing left: still fine
    finally:
        left.down()


# -- runs ---------------------------------------------------------------------------------------------

def docker_test(store: Path, seed: int, bugs: tuple[str, ...] = ()):
    from splitbrain.harness.test import TestOptions as Test  # here, so pytest does not collect it

    return Test(remote="docker", nodes=3, nemesis=("partition", "kill", "pause"), time_limit=10,
                nemesis_interval=2.0, seed=seed, bugs=bugs, store=str(store), rate=100)




@needs_docker
@pytest.mark.timeout(240)
def test_raft_store_on_docker_nodes_is_valid_under_faults(tmp_path: Path, node_image: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from splitbrain.harness.store import RunDir

    monkeypatch.chdir(tmp_path)  # a relative --store, as on the command line: data must still land in it
    outcome = run(docker_test(Path("runs"), 1), console=False)
    assert outcome.valid is True, outcome.results.get("explanation")
    by_f = outcome.results["stats"]["by_f"]
    assert by_f["read"]["ok_count"] > 50 and by_f["write"]["ok_count"] > 20
    history = [json.loads(line) for line in (outcome.run_dir.path / "history.jsonl").read_text().splitlines()]
    faults = {op["f"] for op in history if op["process"] == "nemesis"}
    assert {"kill", "start", "heal"} <= faults
    assert (outcome.run_dir.path / "nodes" / "node1" / "server.log").stat().st_size > 0
    assert (tmp_path / outcome.run_dir.path / "data" / "node1" / "wal").stat().st_size > 0
    assert run_resources(RunDir(outcome.run_dir.path).run_id) == ([], [])


@needs_docker
@pytest.mark.timeout(600)
def test_stale_read_bug_is_caught_on_docker_nodes(tmp_path: Path, node_image: str) -> None:
    from splitbrain.harness.store import RunDir

    verdicts = []
    for seed in (1, 2, 3, 4):  # caught on the first seed in every try here; four bound the time
        outcome = run(docker_test(tmp_path / str(seed), seed, bugs=("stale-read",)), console=False)
        assert run_resources(RunDir(outcome.run_dir.path).run_id) == ([], [])
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            break
    assert False in verdicts, f"stale reads not caught in seeds 1-{len(verdicts)}: {verdicts}"


@needs_docker
@pytest.mark.timeout(60)
def test_a_missing_image_is_one_clear_error(tmp_path: Path) -> None:
    nodes = DockerCluster("dt-no-image", 1, tmp_path / "nodes", image="splitbrain-node:000000000000")
    with pytest.raises(ConfigError, match="splitbrain images build"):
        nodes.up()
    assert run_resources("dt-no-image") == ([], [])


NODES3 = ["node1", "node2", "node3"]


def lease_schedule(with_clock: bool) -> list[dict]:
    """The leader's wall clock steps back 5 s, then the leader is cut off while the majority moves on
    (test_run.py's schedule, on three nodes)."""
    steps: list[dict] = []
    for start in (1.5, 5.0):
        if with_clock:
            steps.append({"at_s": start - 0.2, "f": "bump-clock", "value": {n: -5000 for n in NODES3}})
        steps += [{"at_s": start, "f": "start-partition", "value": "primaries"},
                  {"at_s": start + 2.5, "f": "stop-partition", "value": None}]
        if with_clock:
            steps.append({"at_s": start + 2.8, "f": "reset-clock", "value": None})
    return sorted(steps, key=lambda s: s["at_s"])


@needs_docker
@pytest.mark.timeout(900)
def test_clock_skew_reaches_the_store_on_docker_nodes(tmp_path: Path, node_image: str) -> None:
    """--bug lease-read (leader leases on the wall clock) is caught when the clocks of the processes in
    the containers step back: the skew really reaches them (vDSO patch made inside the node)."""
    from splitbrain.harness.store import RunDir

    verdicts = []
    for seed in range(1, 9):  # caught on 5 of seeds 1-8 when measured
        test = docker_test(tmp_path / str(seed), seed, bugs=("lease-read",))
        test.nemesis, test.schedule, test.time_limit = ("partition", "clock"), lease_schedule(True), 9
        outcome = run(test, console=False)
        assert run_resources(RunDir(outcome.run_dir.path).run_id) == ([], [])
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            break
    assert False in verdicts, f"--bug lease-read with clock faults not caught on Docker nodes: {verdicts}"
    history = [json.loads(line) for line in (outcome.run_dir.path / "history.jsonl").read_text().splitlines()]
    bumps = [op for op in history if op["process"] == "nemesis" and op["f"] == "bump-clock" and op["type"] != "invoke"]
    assert bumps and not any(op.get("error") for op in bumps), bumps
    # The twin: the same partitions with synchronized clocks find nothing.
    twin = docker_test(tmp_path / "twin", 1, bugs=("lease-read",))
    twin.nemesis, twin.schedule, twin.time_limit = ("partition",), lease_schedule(False), 9
    outcome = run(twin, console=False)
    assert outcome.valid is True, outcome.results.get("explanation")


@needs_docker
@pytest.mark.timeout(180)
def test_kill_9_of_a_docker_run_leaves_no_container_within_ten_seconds(tmp_path: Path, node_image: str) -> None:
    """The run's reaper removes its containers and network when the harness dies without a word."""
    import sys

    from splitbrain.harness.store import RunDir

    store = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "splitbrain.harness.cli", "run", "--remote", "docker", "--nodes", "3",
                             "--time-limit", "30", "--nemesis", "partition", "--seed", "3", "--store", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert wait_for(lambda: (store / "latest" / "test.json").exists(), 60)
    run_id = RunDir((store / "latest").resolve()).run_id
    assert wait_for(lambda: len(run_resources(run_id)[0]) == 3, 60), "the containers never started"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_for(lambda: run_resources(run_id) == ([], []), 10), run_resources(run_id)
