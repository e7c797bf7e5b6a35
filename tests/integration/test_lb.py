"""nginx and HAProxy in front of Raft-backed backends, on local nodes: with a safe retry policy every
acknowledged request is applied exactly once under kills and pauses of the backends; with an unsafe one
(the balancer re-sends requests a backend may have applied) a duplicate is caught."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness.cli import main
from splitbrain.harness.run import RunOutcome
from splitbrain.harness.store import RunDir

from tests.integration.helpers import run

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]

BACKENDS = ("node2", "node3", "node4")
UNSAFE_SEEDS = range(1, 4)


def backend_faults(time_limit: float) -> list[dict]:
    """The backends in turn, one at a time, 1 s each and 0.5 s apart: paused, killed, paused, ... -- a
    backend frozen or dead between applying a request and answering it is what tempts a balancer to
    re-send the request elsewhere."""
    steps, at, i = [], 1.0, 0
    while at + 1.5 <= time_limit:
        fault, end = ("kill", "start") if i % 3 == 1 else ("pause", "resume")
        steps += [{"at_s": at, "f": fault, "value": [BACKENDS[i % 3]]}, {"at_s": at + 1.0, "f": end, "value": None}]
        at, i = at + 1.5, i + 1
    return steps


def run_lb(store: Path, balancer: str, retry: str, workload: str, seed: int) -> RunOutcome:
    from splitbrain.harness.test import TestOptions as Test  # here, so pytest does not collect it

    test = Test(target="lb", workload=workload, nemesis=("kill", "pause"), nodes=4, time_limit=8, seed=seed,
                store=str(store), schedule=backend_faults(8), rate=100, concurrency=10,
                target_opts={"lb": balancer, "retry": retry})
    return run(test, console=False, out=io.StringIO())


def assert_nothing_left(run_dir: Path) -> None:
    run_id = RunDir(run_dir).run_id
    assert run_id not in leftover_runs(), f"run {run_id} left namespaces or cgroups"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"sb-{run_id}-" not in netns


def nemesis_fs(run_dir: Path) -> set[str]:
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return {op["f"] for op in history if op["process"] == "nemesis" and op["type"] == "info" and not op.get("error")}


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("balancer", "workload"), [("nginx", "set"), ("haproxy", "unique-ids")])
def test_safe_retries_apply_every_request_once_under_kills_and_pauses(tmp_path: Path, balancer: str,
                                                                      workload: str) -> None:
    outcome = run_lb(tmp_path, balancer, "safe", workload, seed=1)
    run_dir = outcome.run_dir.path
    assert_nothing_left(run_dir)
    results = outcome.results
    assert outcome.valid is True, results.get("explanation")
    f = "add" if workload == "set" else "generate"
    assert results["stats"]["by_f"][f]["ok_count"] > 50  # the run really did something
    assert {"pause", "resume", "kill", "start", "heal"} <= nemesis_fs(run_dir)
    availability = results["availability"]
    assert availability["during_faults"]["count"] > 0 and availability["without_faults"]["count"] > 0
    assert 0 <= availability["during_faults"]["availability"] <= 1
    assert (run_dir / "nodes" / "node1" / f"{balancer}.log").exists()
    assert (run_dir / "nodes" / "node2" / "backend.log").exists()


@pytest.mark.timeout(90)
def test_the_register_is_linearizable_through_a_safe_balancer(tmp_path: Path) -> None:
    outcome = run_lb(tmp_path, "nginx", "safe", "register", seed=1)
    assert_nothing_left(outcome.run_dir.path)
    assert outcome.valid is True, outcome.results.get("explanation")
    assert outcome.results["stats"]["by_f"]["write"]["ok_count"] > 10


@pytest.mark.timeout(200)
@pytest.mark.parametrize(("balancer", "workload"), [("nginx", "unique-ids"), ("haproxy", "set")])
def test_unsafe_retries_apply_a_request_twice(tmp_path: Path, balancer: str, workload: str) -> None:
    verdicts = []
    for seed in UNSAFE_SEEDS:
        outcome = run_lb(tmp_path, balancer, "unsafe", workload, seed)
        assert_nothing_left(outcome.run_dir.path)
        verdicts.append(outcome.valid)
        if outcome.valid is False:
            applied_once = outcome.results["applied-once"]
            assert applied_once["valid"] is False and applied_once["duplicated_count"] > 0
            assert "applied more often than they were attempted" in outcome.results["explanation"]
            return
    pytest.fail(f"{balancer} with unsafe retries: no duplicate caught on seeds {list(UNSAFE_SEEDS)}: {verdicts}")


@pytest.mark.timeout(90)
def test_the_command_line_runs_haproxy_with_a_random_schedule(tmp_path: Path) -> None:
    code = main(["run", "--store", str(tmp_path), "--target", "lb", "--target-opt", "lb=haproxy",
                 "--workload", "set", "--nemesis", "kill,pause", "--nodes", "4", "--time-limit", "6",
                 "--nemesis-interval", "1.5", "--seed", "3"])
    run_dir = (tmp_path / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert code == 0, results.get("explanation")
    assert results["set"]["final_read_count"] >= 1
    assert_nothing_left(run_dir)
