"""`splitbrain shrink RUN_DIR` on a real failing run of a Raft bug: a smaller run that still fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness.cli import main
from splitbrain.harness.test import TestOptions

from tests.integration.helpers import run

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]


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
    assert not leftover_runs()
