"""`splitbrain shrink RUN_DIR` on real failing runs, of a Raft bug and of a third-party unsafe configuration
(nginx with unsafe retries): a smaller run that still fails with the same signature."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness.cli import main
from splitbrain.harness.run import repro_test, schedule_of
from splitbrain.harness.shrink import fault_count, signature_of
from splitbrain.harness.store import RunDir
from splitbrain.harness.test import TestOptions
from splitbrain.nemesis.schedule import Step

from tests.integration.helpers import run

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]


def assert_nothing_left(store: Path) -> None:
    """None of this test's runs (the original and every candidate) left namespaces or cgroups; other
    people's runs on the same machine are not this test's business."""
    ours = {RunDir(test_json.parent).run_id for test_json in store.rglob("test.json")}
    assert ours and not ours & set(leftover_runs())


@pytest.mark.timeout(420)
def test_shrink_turns_a_failing_stale_read_run_into_a_smaller_one_that_still_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = TestOptions(target="raft", bugs=("stale-read",), nemesis=("partition",), nodes=3, time_limit=8,
                          nemesis_interval=2, seed=1, store=str(tmp_path / "runs"))
    original = run(options)
    assert original.valid is False, "the stale-read run did not fail; nothing to shrink"
    assert main(["shrink", str(original.run_dir.path), "--tries", "2", "--budget", "1.5"]) == 1
    out = capsys.readouterr().out
    assert "shrink: from " in out and "reproduce with: splitbrain repro" in out
    marked = next((tmp_path / "runs").rglob("shrunk.json"))
    record = json.loads(marked.read_text())
    assert record["shrunk_from"] == str(original.run_dir.path)
    assert record["limits"]["time_limit_s"] < 8 or len(record["schedule"]) < len(original.results.get("schedule", [1] * 99))
    best = json.loads((marked.parent / "results.json").read_text())
    assert best["valid"] is False  # the smaller run failed too
    stored = json.loads((marked.parent / "test.json").read_text())
    assert stored["time_limit"] == record["limits"]["time_limit_s"]  # repro of it replays the smaller test
    assert_nothing_left(tmp_path / "runs")


@pytest.mark.timeout(180)
def test_shrink_turns_a_failing_unsafe_nginx_run_into_a_smaller_one_that_still_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A third-party unsafe configuration: nginx re-sending POSTs a paused or killed backend had applied."""
    store = tmp_path / "runs"
    assert main(["run", "--store", str(store), "--target", "lb", "--target-opt", "retry=unsafe", "--workload", "set",
                 "--nemesis", "kill,pause", "--nodes", "4", "--time-limit", "8", "--nemesis-interval", "1",
                 "--seed", "1"]) == 1, "the unsafe nginx run did not fail; nothing to shrink"
    original = (store / "latest").resolve()
    signature = signature_of(json.loads((original / "results.json").read_text()))
    original_faults = fault_count(schedule_of(repro_test(RunDir(original))))
    capsys.readouterr()
    assert main(["shrink", str(original), "--tries", "1", "--budget", "1"]) == 1
    out = capsys.readouterr().out
    assert "shrink: from " in out and "reproduce with: splitbrain repro" in out
    marked = next(store.rglob("shrunk.json"))
    record = json.loads(marked.read_text())
    assert record["shrunk_from"] == str(original) and record["repro"] == f"splitbrain repro {marked.parent}"
    smaller = [Step.from_json(s) for s in record["schedule"]]
    assert fault_count(smaller) < original_faults or record["limits"]["time_limit_s"] < 8
    assert signature_of(json.loads((marked.parent / "results.json").read_text())) & signature  # the same failure
    stored = json.loads((marked.parent / "test.json").read_text())
    assert stored["nodes"] >= 4 and stored["schedule"] == record["schedule"]  # lb runs on 4 nodes at least
    assert_nothing_left(store)
