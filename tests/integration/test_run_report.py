"""Every run leaves report.html: interrupted, failed before its first op, or caught with a lock bug (the
holds and the fencing violation drawn)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from splitbrain.harness.cli import main
from splitbrain.harness.report.evidence import OpLookup
from splitbrain.histories.jsonl import read_jsonl

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")]

SHORT = ["--time-limit", "8", "--nemesis-interval", "1.5", "--nodes", "5", "--rate", "100"]


def _timeline(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


@pytest.mark.timeout(120)
def test_an_interrupted_run_has_a_report_that_says_it_ended_early(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "splitbrain.harness.cli", "run", "--store", str(tmp_path), *SHORT,
                             "--nemesis", "partition", "--seed", "8"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(random.Random(8).uniform(3.0, 5.0))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert "Traceback" not in err and "interrupted" in out
    run_dir = (tmp_path / "latest").resolve()
    page = (run_dir / "report.html").read_text()
    assert f"report: {run_dir / 'report.html'}" in out
    assert "interrupted by SIGINT" in page
    assert _timeline(page)["shown"] > 0


@pytest.mark.timeout(120)
def test_a_run_that_fails_before_any_op_still_has_a_report(tmp_path: Path, capsys) -> None:
    hosts = ",".join(f"node{i}=127.0.0.1:1" for i in (1, 2, 3))  # nothing listens on port 1
    code = main(["run", "--store", str(tmp_path), "--remote", "ssh", "--nodes", "3", "--ssh-hosts", hosts,
                 "--ssh-accept-new", "--nemesis", "none", "--time-limit", "2"])
    assert code == 4  # an unreachable host: the run itself failed
    run_dir = next(p for p in (tmp_path / "raft-register").iterdir())
    page = (run_dir / "report.html").read_text()
    assert "the run failed" in page and "cannot reach" in page
    assert "report: " in capsys.readouterr().out


@pytest.mark.timeout(400)
def test_a_lock_run_caught_without_fencing_draws_the_holds_and_the_stale_write(tmp_path: Path) -> None:
    from splitbrain.harness.test import TestOptions as Test  # here, so pytest does not collect it

    from tests.integration.helpers import run

    schedule = []
    for start in (1.0, 5.0, 9.0):
        schedule += [{"at_s": start, "f": "start-partition", "value": "one"},
                     {"at_s": start + 3.0, "f": "stop-partition", "value": None}]
    for seed in range(1, 7):
        outcome = run(Test(workload="lock", nemesis=("partition",), nodes=3, time_limit=13, seed=seed,
                           bugs=("no-fencing",), store=str(tmp_path), schedule=schedule, rate=150, concurrency=3),
                      console=False)
        if outcome.valid is False:
            break
    else:
        pytest.fail("--bug no-fencing was not caught on seeds 1-6")
    page = (outcome.run_dir.path / "report.html").read_text()
    fencing = outcome.results["lock"]["fencing"]
    assert "Fencing: stale write" in page or "Fencing: token order" in page
    roles = {r[5]: r[7] for r in _timeline(page)["ops"]}
    which = "stale_write" if "stale_write" in fencing else "token_order"
    later = fencing[which]["stale" if which == "stale_write" else "later"]["index"]  # a completion's index
    history = read_jsonl(str(outcome.run_dir.history_file))
    assert roles[OpLookup(history).get(later).call] == "failing"  # red on the timeline
