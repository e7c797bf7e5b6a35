"""`splitbrain test-all` with real runs on local nodes, each a few seconds: the shipped targets' plan with
--junit (the file validated against the JUnit schema), plans that must pass and plans that must fail
deciding the exit code, one group per bug, two runs at once that never see each other, and a plan
stopped by Ctrl-C that leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from splitbrain import Plan, PlanTest, run_plan
from splitbrain.control.local import leftover_runs
from splitbrain.harness.cli import main
from splitbrain.harness.store import RunDir

from tests.integration.helpers import needs_root, wait_for

pytestmark = [pytest.mark.integration, needs_root]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit.xsd"))
SHORT = """\
[defaults]
time_limit = 3
nemesis_interval = 1
recovery = 1
nodes = 3
"""


def index_of(store: Path) -> dict[str, Any]:
    (index,) = store.glob("*/*/index.json")
    return json.loads(index.read_text())


def run_dirs(index: dict[str, Any]) -> list[Path]:
    return [Path(r["run_dir"]) for t in index["tests"] for r in t["runs"] if r["run_dir"]]


def assert_nothing_left(index: dict[str, Any]) -> None:
    left = set(leftover_runs())
    ids = [RunDir(p).run_id for p in run_dirs(index)]
    assert ids and not left & set(ids), f"runs left namespaces or cgroups: {left & set(ids)}"


def write_plan(tmp_path: Path, body: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(SHORT + textwrap.dedent(body))
    return path


@pytest.mark.timeout(300)
def test_the_shipped_targets_plan_passes_with_valid_junit(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    code = main(["test-all", str(ROOT / "examples" / "plans" / "shipped-targets.toml"), "--junit", str(junit),
                 "--parallel", "2", "--store", str(tmp_path / "plans")])
    index = index_of(tmp_path / "plans")
    assert code == 0, json.dumps([(t["name"], t["verdict"], [r["reason"] for r in t["runs"]]) for t in index["tests"]])
    SCHEMA.validate(str(junit))
    suite = SCHEMA.to_dict(str(junit))["testsuite"][0]
    assert (suite["@name"], suite["@tests"], suite["@failures"], suite["@errors"]) == ("shipped-targets", "6", "0", "0")
    targets = {t["target"] for t in index["tests"]}
    assert targets == {"raft", "etcd", "zookeeper", "lb"}
    for case in suite["testcase"]:
        report = re.search(r"report: (\S+)", case["system-out"][0]).group(1)
        assert Path(report).is_file()
    assert all(r["ops"] and r["ops"] > 20 for t in index["tests"] for r in t["runs"])  # they really ran
    assert_nothing_left(index)


MUST = """\
[[test]]
name = "safe"
nemesis = "partition"

[[test]]
name = "hunt"
bugs = "stale-read"
nemesis = "partition"
seeds = [1, 2, 3]
expect = "invalid"

[[test]]
name = "stale-read-called-safe"
bugs = "stale-read"
nemesis = "partition"
seeds = [1, 2]

[[test]]
name = "hunt-in-a-correct-store"
nemesis = "partition"
expect = "invalid"
"""


@pytest.mark.timeout(400)
def test_expectations_and_policies_decide_the_exit_code(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, MUST)
    assert main(["test-all", str(plan), "--only", "safe", "--only", "hunt", "--parallel", "2",
                 "--store", str(tmp_path / "pass")]) == 0
    passing = index_of(tmp_path / "pass")
    assert [(t["name"], t["verdict"]) for t in passing["tests"]] == [("safe", "pass"), ("hunt", "pass")]
    assert_nothing_left(passing)

    junit = tmp_path / "fail.xml"
    assert main(["test-all", str(plan), "--only", "stale-read-called-safe", "--only", "hunt-in-*", "--parallel", "2",
                 "--junit", str(junit), "--store", str(tmp_path / "fail")]) == 1
    failing = index_of(tmp_path / "fail")
    assert [(t["name"], t["verdict"]) for t in failing["tests"]] == [("stale-read-called-safe", "fail"),
                                                                     ("hunt-in-a-correct-store", "fail")]
    SCHEMA.validate(str(junit))
    cases = SCHEMA.to_dict(str(junit))["testsuite"][0]["testcase"]
    failures = {c["@name"]: c["failure"][0] for c in cases if "failure" in c}
    hunt = failures["hunt-in-a-correct-store seed 1 #1"]
    assert hunt["@message"] == "seed 1: expected invalid (the bug found), the history is valid"
    stale = [f for name, f in failures.items() if name.startswith("stale-read-called-safe")]
    assert stale and all(f["@message"].split(": ", 1)[1].startswith("[linearizable] key") for f in stale)
    assert all("repro: splitbrain repro " in f["$"] for f in stale)
    assert_nothing_left(failing)


@pytest.mark.timeout(300)
def test_failures_are_grouped_one_group_per_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, """\
        [[test]]
        name = "stale-read"
        bugs = "stale-read"
        nemesis = "partition"
        count = 2
        expect = "invalid"
        policy = "all"

        [[test]]
        name = "nginx-retries-posts"
        targets = "lb"
        workloads = "set"
        nodes = 4
        time_limit = 6
        nemesis = "kill,pause"
        options = { retry = "unsafe" }
        seeds = [1, 2]
        count = 2
        expect = "invalid"
        policy = "all"
        """)
    main(["test-all", str(plan), "--parallel", "2", "--store", str(tmp_path / "plans")])
    index = index_of(tmp_path / "plans")
    found = {t["name"]: sum(r["valid"] is False for r in t["runs"]) for t in index["tests"]}
    assert found["stale-read"] >= 1 and found["nginx-retries-posts"] >= 1, found
    groups = index["groups"]
    assert len(groups) == 2, [g["label"] for g in groups]
    tests = [{r["test"] for r in g["runs"]} for g in groups]
    assert sorted(map(sorted, tests)) == [["nginx-retries-posts"], ["stale-read"]], tests  # a group per bug
    for g, (test,) in zip(groups, tests, strict=True):
        seen = {g["label"]} | {also["label"] for also in g["also"]}
        wanted = {"stale-read": "linearizable / nonlinearizable / read / raft",
                  "nginx-retries-posts": "applied-once / duplicated / read / lb"}[test]
        assert wanted in seen, seen
        assert g["sightings"] == found[test]  # every invalid run of the test, once
        assert [r["ops"] for r in g["runs"]] == sorted(r["ops"] for r in g["runs"])  # the simplest first
    out = capsys.readouterr().out
    assert "2 group(s), simplest sighting first" in out
    assert_nothing_left(index)


def anchor(run_dir: Path) -> dt.datetime:
    """The wall-clock time of the run's history time 0 (harness.log)."""
    found = re.search(r"history time 0 is (\S+)", (run_dir / "harness.log").read_text())
    return dt.datetime.fromisoformat(found.group(1))


def ops(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def subnet(run_dir: Path) -> str:
    found = re.search(r"peers on (\d+\.\d+\.\d+)\.\d+:", (run_dir / "nodes" / "node1" / "server.log").read_text())
    return found.group(1)


def elections_after_the_first_leader(run_dir: Path, until: dt.datetime) -> list[str]:
    """The Raft nodes' campaigns (pre-vote or vote) after the run's first leader, up to ``until``: a
    node starts one only when it stops hearing from its leader."""
    lines = sorted(line for log in (run_dir / "nodes").glob("*/server.log") for line in log.read_text().splitlines()
                   if " in term " in line)
    first = next(i for i, line in enumerate(lines) if " leader in term " in line)
    term = int(re.search(r" in term (\d+)", lines[first]).group(1))
    return [line for line in lines[first + 1:] if "candidate in term" in line  # not a late one of the first election
            and int(re.search(r" in term (\d+)", line).group(1)) >= term
            and dt.datetime.fromisoformat(line.split()[0]).replace(tzinfo=dt.UTC) <= until]


@pytest.mark.timeout(300)
def test_two_runs_at_once_one_partitioned_the_other_unaffected(tmp_path: Path) -> None:
    settings = {"time_limit": 6, "nemesis_interval": 1.5, "recovery": 1, "nodes": 3, "rate": 60}
    plan = Plan("side-by-side", [PlanTest("cut", nemesis="partition", **settings),
                                 PlanTest("calm", nemesis="none", **settings)])
    result = run_plan(plan, parallel=2, store=str(tmp_path / "plans"), out=io.StringIO())
    assert result.exit_code == 0, result.summary_lines()
    cut, calm = (Path(result.records[name][0].run_dir) for name in ("cut", "calm"))
    assert RunDir(cut).run_id != RunDir(calm).run_id and subnet(cut) != subnet(calm)

    cut_start, calm_start = anchor(cut), anchor(calm)
    windows = json.loads((cut / "results.json").read_text())["availability"]["fault_windows_s"]
    partitions = [op for op in ops(cut) if op["f"] == "start-partition" and op["type"] != "invoke"]
    assert windows and partitions and all(op["value"]["grudge"] for op in partitions)
    cut_end = cut_start + dt.timedelta(seconds=max(op["time"] for op in ops(cut)) / 1e9)
    assert elections_after_the_first_leader(cut, cut_end)  # the partitions reached the cut run's nodes

    calm_ops = ops(calm)
    assert not [op for op in calm_ops if op["process"] == "nemesis" and op["f"] != "heal"]
    calm_end_s = max(op["time"] for op in calm_ops) / 1e9
    offset = (cut_start - calm_start).total_seconds()  # a time of the cut run -> the same moment in the calm run
    overlapping = [(a + offset, b + offset) for a, b in windows if 0 < a + offset and b + offset < calm_end_s]
    assert overlapping, "the runs did not overlap in time"
    for start, stop in overlapping:  # the calm run went on serving while the other was cut
        assert any(op["type"] == "ok" and op["process"] != "nemesis" and start <= op["time"] / 1e9 <= stop
                   for op in calm_ops), (start, stop)
    # ... and no node of it ever stopped hearing from its leader
    assert elections_after_the_first_leader(calm, calm_start + dt.timedelta(seconds=calm_end_s)) == []
    assert_nothing_left(result.to_json())


@pytest.mark.timeout(180)
def test_a_plan_stopped_by_ctrl_c_heals_cleans_up_and_writes_its_index(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, """\
        [[test]]
        name = "long"
        nemesis = "partition"
        seeds = [1, 2, 3]
        time_limit = 30
        """)
    process = subprocess.Popen([sys.executable, "-m", "splitbrain.harness.cli", "test-all", str(plan), "--parallel", "2",
                                "--store", str(tmp_path / "plans")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        assert wait_for(lambda: len([h for h in (tmp_path / "plans").glob("*/*/runs/*/*/history.jsonl")
                                     if h.stat().st_size > 2000]) == 2, 60), "the runs never got going"
        os.kill(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out
    index = index_of(tmp_path / "plans")
    assert index["interrupted_by"] == "SIGINT" and index["exit_code"] == 130
    runs = index["tests"][0]["runs"]
    assert [r["status"] for r in runs] == ["done", "done", "pending"]
    for r in runs[:2]:
        results = json.loads((Path(r["run_dir"]) / "results.json").read_text())
        assert results["interrupted"] is True and results["interrupted_by"] == "SIGINT"
    assert "SIGINT: no more runs start" in out
    assert_nothing_left(index)


@pytest.mark.timeout(120)
def test_a_single_run_writes_junit_too(tmp_path: Path) -> None:
    junit = tmp_path / "run.xml"
    code = main(["run", "--time-limit", "3", "--nemesis-interval", "1", "--recovery", "1", "--nodes", "3",
                 "--nemesis", "partition", "--bug", "stale-read", "--seed", "1", "--store", str(tmp_path / "runs"),
                 "--junit", str(junit)])
    SCHEMA.validate(str(junit))
    (case,) = SCHEMA.to_dict(str(junit))["testsuite"][0]["testcase"]
    assert case["@name"] == "raft-register seed 1"
    if code == 1:  # stale reads found (the usual case on seed 1)
        assert case["failure"][0]["@message"].startswith("[linearizable] key")
        assert "repro: splitbrain repro " in case["failure"][0]["$"]
    else:
        assert code == 0 and "failure" not in case
    assert "report: " in case["system-out"][0]
