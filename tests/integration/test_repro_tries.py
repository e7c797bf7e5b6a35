"""`splitbrain repro RUN_DIR --tries N`: the stored test run again N times, each try a run dir of its own,
and how often it failed as the stored run did."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from splitbrain.control.local import leftover_runs
from splitbrain.harness.cli import main
from splitbrain.harness.store import RunDir

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]


@pytest.mark.timeout(240)
def test_repro_tries_runs_the_stored_test_n_times_and_counts_the_failures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "runs"
    assert main(["run", "--store", str(store), "--target", "raft", "--nodes", "3", "--time-limit", "2",
                 "--seed", "5"]) == 0
    stored = (store / "latest").resolve()
    capsys.readouterr()
    assert main(["repro", str(stored), "--tries", "2"]) == 0  # none failed: the last try's verdict (valid)
    out = capsys.readouterr().out
    assert "repro: try 1 of 2: exit 0" in out and "repro: try 2 of 2: exit 0" in out
    assert f"repro: failing in 0 of 2 tries (the stored run: {stored})" in out
    tries = sorted(p.parent for p in store.rglob("test.json") if p.parent != stored)
    assert len(tries) == 2  # each try its own run dir, beside the stored one
    first = json.loads((stored / "test.json").read_text())
    for again in tries:
        test = json.loads((again / "test.json").read_text())
        assert test["repro_of"] == str(stored) and test["seed"] == 5 and test["schedule"] == first["schedule"]
    ours = {RunDir(p).run_id for p in [stored, *tries]}
    assert not ours & set(leftover_runs())
    # The op stream too: the same ops (f, key, value) in the same order, up to where the time limit cut
    # each run (how many ops fit in 2 s is timing); which worker ran which op is timing and is not compared.
    main_ops = [client_invocations(p) for p in (stored, *tries)]
    shortest = min(len(m) for m in main_ops)
    assert shortest > 50 and all(m[:shortest] == main_ops[0][:shortest] for m in main_ops)


def client_invocations(run_dir: Path) -> list[tuple]:
    """The clients' invocations of the main phase (before the final heal), as (f, key, value)."""
    ops = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    heal = max(i for i, op in enumerate(ops) if op["process"] == "nemesis" and op["f"] == "heal")
    return [(op["f"], op.get("key"), json.dumps(op.get("value"))) for op in ops[:heal]
            if op["type"] == "invoke" and op["process"] != "nemesis"]


def test_repro_tries_must_be_a_positive_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "raft-register" / "20260101T000000.000-abcd"
    run_dir.mkdir(parents=True)
    (run_dir / "test.json").write_text(json.dumps({"target": "raft"}))
    assert main(["repro", str(run_dir), "--tries", "0"]) == 3
    assert "--tries must be a whole number >= 1" in capsys.readouterr().err
