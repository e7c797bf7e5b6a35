"""The plan runner's logic without real runs: a fake launcher stands in for the run processes (each fake
run leaves the files a real one does), so the exit codes, the pass policies, the index, the grouped
failures, the JUnit file, the progress lines and stopping are checked in milliseconds. The real runs
are in tests/integration/test_plans.py."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from splitbrain import Plan, PlanTest, run_plan
from splitbrain.harness.plan.runner import Job

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "data" / "junit.xsd"))
Scenario = Callable[[Job], dict[str, Any]]

VALID = {"valid": True, "stats": {"valid": True, "count": 100}}


def stale_read(ops: int = 100) -> dict[str, Any]:
    return {"valid": False, "stats": {"valid": True, "count": ops},
            "linearizable": {"valid": False, "failure": {"op": {"f": "read", "invoke_index": 7}}},
            "explanation": "[linearizable] key 1: cannot linearize [7..8] process 1 read key=1 -> ok 0\nmore"}


def lost_add(ops: int = 100) -> dict[str, Any]:
    return {"valid": False, "stats": {"valid": True, "count": ops},
            "set": {"valid": False, "lost_count": 1, "lost": [{"element": 3, "add_index": 4}]},
            "explanation": "[set] 1 acknowledged add(s) lost, e.g. 3"}


class FakeHandle:
    def __init__(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome
        self.signals: list[int] = []
        self.polls = 0

    def poll(self) -> dict[str, Any] | None:
        self.polls += 1
        return self.outcome if self.polls > 1 else None  # running for one poll

    def signal(self, signum: int) -> None:
        self.signals.append(signum)


class FakeLauncher:
    """Each run: a run directory with test.json, results.json and history.jsonl, as a real run leaves."""

    def __init__(self, scenario: Scenario, on_start: Callable[[Job], None] | None = None) -> None:
        self.scenario, self.on_start = scenario, on_start
        self.started: list[Job] = []
        self.handles: list[FakeHandle] = []

    def start(self, job: Job) -> FakeHandle:
        self.started.append(job)
        results = self.scenario(job)
        run_dir = Path(job.options.store) / job.cell.name / f"run{job.number}"
        run_dir.mkdir(parents=True)
        faults = results.pop("faults", 2)
        (run_dir / "test.json").write_text(json.dumps({**job.options.to_json(), "schedule": [{}] * faults}))
        (run_dir / "results.json").write_text(json.dumps(results))
        (run_dir / "history.jsonl").write_text("".join(json.dumps({"index": i, "f": "add" if i == 4 else "read"}) + "\n"
                                                       for i in range(10)))
        (run_dir / "report.html").write_text("<html></html>")
        outcome = {"run_dir": str(run_dir), "valid": results["valid"], "exit_code": 0, "interrupted": None,
                   "error": results.get("error")}
        handle = FakeHandle(outcome)
        self.handles.append(handle)
        if self.on_start is not None:
            self.on_start(job)
        return handle


@pytest.fixture(autouse=True)
def no_preflight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names are real, but these runs make no nodes: nothing to check on this machine."""
    monkeypatch.setattr("splitbrain.harness.plan.runner.preflight", lambda plan, cells, parallel: None)
    monkeypatch.setattr("splitbrain.harness.plan.runner.POLL_S", 0.0)


def plan(*tests: PlanTest) -> Plan:
    return Plan("gate", list(tests))


def go(tmp_path: Path, the_plan: Plan, scenario: Scenario, **kwargs: Any) -> tuple[Any, FakeLauncher, str]:
    launcher = FakeLauncher(scenario, kwargs.pop("on_start", None))
    out = io.StringIO()
    result = run_plan(the_plan, store=str(tmp_path / "plans"), out=out, launcher=launcher,
                      junit=str(tmp_path / "junit.xml"), **kwargs)
    return result, launcher, out.getvalue()


def junit(tmp_path: Path) -> dict[str, Any]:
    SCHEMA.validate(str(tmp_path / "junit.xml"))
    return SCHEMA.to_dict(str(tmp_path / "junit.xml"))


def cases(tmp_path: Path) -> list[dict[str, Any]]:
    return junit(tmp_path)["testsuite"][0]["testcase"]


def test_a_plan_whose_tests_all_meet_their_expectations_exits_0(tmp_path: Path) -> None:
    result, launcher, out = go(tmp_path, plan(
        PlanTest("safe", workloads=["register", "lock"], seeds=[1, 2]),
        PlanTest("bug", bugs="stale-read", nemesis="partition", seeds=[1], expect="invalid")),
        lambda job: stale_read() if job.cell.name == "bug" else dict(VALID))
    assert result.exit_code == 0
    assert len(launcher.started) == 5
    index = json.loads((result.plan_dir / "index.json").read_text())
    assert index["exit_code"] == 0 and [t["verdict"] for t in index["tests"]] == ["pass"] * 3
    assert index["tests"][0]["runs"][0]["run_dir"].startswith(str(result.plan_dir / "runs"))
    assert (result.plan_dir / "junit.xml").read_text() == (tmp_path / "junit.xml").read_text()
    suite = junit(tmp_path)["testsuite"][0]
    assert (suite["@name"], suite["@tests"], suite["@failures"], suite["@errors"]) == ("gate", "5", "0", "0")
    assert "== plan gate: 3 of 3 test(s) met their expectation (exit 0)" in out
    assert (result.plan_dir / "summary.txt").read_text().startswith("== plan gate: 3 of 3")


def test_a_safety_test_with_one_invalid_repeat_fails_the_plan_with_the_reason_seed_and_repro(tmp_path: Path) -> None:
    result, _, out = go(tmp_path, plan(PlanTest("safe", seeds=[1, 2], count=2)),
                        lambda job: stale_read() if (job.record.seed, job.record.repeat) == (2, 1) else dict(VALID))
    assert result.exit_code == 1
    failed = [c for c in cases(tmp_path) if "failure" in c]
    assert [c["@name"] for c in failed] == ["safe seed 2 #1"]
    failure = failed[0]["failure"][0]
    assert failure["@message"] == "seed 2: [linearizable] key 1: cannot linearize [7..8] process 1 read key=1 -> ok 0"
    run_dir = result.records["safe"][2].run_dir
    assert f"repro: splitbrain repro {run_dir}" in failure["$"] and "seed: 2, repeat 1" in failure["$"]
    assert f"report: {run_dir}/report.html" in failed[0]["system-out"][0]
    assert "FAIL     safe" in out and f"seed 2 #1: invalid  {run_dir}" in out


def test_a_bug_hunt_passes_on_its_first_sighting_and_runs_no_more(tmp_path: Path) -> None:
    result, launcher, out = go(tmp_path, plan(PlanTest("hunt", bugs="stale-read", seeds=range(1, 9),
                                                       expect="invalid")),
                               lambda job: stale_read() if job.record.seed == 3 else dict(VALID))
    assert result.exit_code == 0
    assert [j.record.seed for j in launcher.started] == [1, 2, 3]
    statuses = [c for c in cases(tmp_path)]
    assert sum("skipped" in c for c in statuses) == 5 and not any("failure" in c for c in statuses)
    assert "1 of 8 run(s) found the bug (5 not needed)" in out


def test_a_bug_hunt_that_never_finds_its_bug_fails(tmp_path: Path) -> None:
    result, _, _ = go(tmp_path, plan(PlanTest("hunt", seeds=[1, 2], expect="invalid")), lambda job: dict(VALID))
    assert result.exit_code == 1
    messages = [c["failure"][0]["@message"] for c in cases(tmp_path)]
    assert messages == ["seed 1: expected invalid (the bug found), the history is valid",
                        "seed 2: expected invalid (the bug found), the history is valid"]


def test_an_only_unknown_test_exits_2_and_a_failed_run_exits_4(tmp_path: Path) -> None:
    unknown = {"valid": "unknown", "explanation": "search stopped before a verdict: time limit"}
    result, _, _ = go(tmp_path, plan(PlanTest("safe")), lambda job: dict(unknown))
    assert result.exit_code == 2
    assert cases(tmp_path)[0]["error"][0]["@type"] == "unknown"
    failed = {"valid": True, "error": "RemoteError: node1 did not come up"}
    result, _, out = go(tmp_path, plan(PlanTest("safe")), lambda job: dict(failed))
    assert result.exit_code == 4
    error = cases(tmp_path)[0]["error"][0]
    assert error["@type"] == "run-failed" and "node1 did not come up" in error["@message"]
    assert "ERROR    safe" in out


def test_most_passes_with_a_majority(tmp_path: Path) -> None:
    result, _, _ = go(tmp_path, plan(PlanTest("flaky", seeds=[1, 2, 3], policy="most")),
                      lambda job: stale_read() if job.record.seed == 2 else dict(VALID))
    assert result.exit_code == 0
    assert not any("failure" in c for c in cases(tmp_path))  # the test passed: its missed run is no failure


def test_the_command_line_overrides_count_policy_and_selection(tmp_path: Path) -> None:
    result, launcher, _ = go(tmp_path, plan(PlanTest("a", seeds=[1]), PlanTest("b", seeds=[1, 2])),
                             lambda job: stale_read() if job.record.repeat == 1 else dict(VALID),
                             test_count=3, pass_policy="most", only=["b"])
    assert [c.name for c in result.cells] == ["b"]
    assert [(j.record.seed, j.record.repeat) for j in launcher.started] == [(s, r) for s in (1, 2) for r in (1, 2, 3)]
    assert result.exit_code == 0  # 4 of 6 valid: most


def test_forty_failing_repeats_of_one_bug_are_one_group_simplest_first(tmp_path: Path) -> None:
    sizes = [500 - 10 * i if i != 17 else 42 for i in range(40)]
    result, _, out = go(tmp_path, plan(PlanTest("safe", count=40), PlanTest("sets", workloads="set", targets="lb",
                                                                            nodes=4)),
                        lambda job: stale_read(sizes[job.record.repeat - 1]) if job.cell.name == "safe"
                        else lost_add(300))
    groups = json.loads((result.plan_dir / "index.json").read_text())["groups"]
    assert [(g["label"], g["sightings"]) for g in groups] == [
        ("linearizable / nonlinearizable / read / raft", 40), ("set / lost / add / lb", 1)]
    assert groups[0]["runs"][0]["repeat"] == 18 and groups[0]["runs"][0]["ops"] == 42  # the smallest first
    assert [r["ops"] for r in groups[0]["runs"]] == sorted(r["ops"] for r in groups[0]["runs"])
    assert not groups[0]["expected"]
    assert "2 group(s), simplest sighting first" in out
    assert "1. linearizable / nonlinearizable / read / raft  40 sighting(s)  (UNEXPECTED)" in out


def test_progress_says_done_left_what_runs_and_the_time_left(tmp_path: Path) -> None:
    _, _, out = go(tmp_path, plan(PlanTest("safe", seeds=[1, 2, 3], time_limit=10, recovery=2)), lambda job: dict(VALID))
    lines = out.splitlines()
    assert lines[0].startswith("plan gate: 1 test(s), 3 run(s), 1 at a time -> ")
    assert lines[1].startswith("[0/3] start safe seed 1 #1  (raft register no faults)  | 3 left, ETA ")
    assert any(line.startswith("[1/3] valid (as expected)  safe seed 1 #1") and "| 2 left, ETA" in line
               for line in lines)


def test_parallel_runs_start_k_at_a_time(tmp_path: Path) -> None:
    running: list[int] = []

    def on_start(job: Job) -> None:
        running.append(sum(1 for h in launcher_ref[0].handles if h.polls < 2))

    launcher_ref: list[FakeLauncher] = []
    launcher = FakeLauncher(lambda job: dict(VALID), on_start)
    launcher_ref.append(launcher)
    run_plan(plan(PlanTest("safe", seeds=[1, 2, 3, 4, 5])), store=str(tmp_path / "plans"), out=io.StringIO(),
             launcher=launcher, parallel=2)
    assert max(running) == 2 and running[:2] == [1, 2]


def test_a_signal_stops_the_plan_passes_the_signal_on_and_writes_what_ran(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def on_start(job: Job) -> None:
        if job.number == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as CI cancelling the job

    result, launcher, out = go(tmp_path, plan(PlanTest("safe", seeds=[1, 2, 3, 4])), lambda job: dict(VALID),
                               on_start=on_start)
    assert len(launcher.started) == 2
    assert launcher.handles[1].signals == [signal.SIGTERM]  # the running run was told, once
    assert result.exit_code == 128 + signal.SIGTERM
    index = json.loads((result.plan_dir / "index.json").read_text())
    assert index["interrupted_by"] == "SIGTERM"
    assert [r["outcome"] for r in index["tests"][0]["runs"]] == ["met", "met", "not run", "not run"]
    assert sum("skipped" in c for c in cases(tmp_path)) == 2
    assert "SIGTERM: no more runs start" in out
    assert signal.getsignal(signal.SIGTERM) is before  # the plan's handlers are gone


def test_each_plan_run_has_its_own_folder(tmp_path: Path) -> None:
    first, _, _ = go(tmp_path, plan(PlanTest("safe")), lambda job: dict(VALID))
    second, _, _ = go(tmp_path, plan(PlanTest("safe")), lambda job: dict(VALID))
    assert first.plan_dir != second.plan_dir and first.plan_dir.parent == second.plan_dir.parent
    assert (first.plan_dir / "index.json").is_file() and (second.plan_dir / "index.json").is_file()


def test_when_the_plan_itself_fails_its_running_runs_are_stopped(tmp_path: Path) -> None:
    def on_start(job: Job) -> None:
        if job.number == 2:
            raise OSError("no more processes")

    launcher = FakeLauncher(lambda job: dict(VALID), on_start)
    with pytest.raises(OSError, match="no more processes"):
        run_plan(plan(PlanTest("safe", seeds=[1, 2, 3])), store=str(tmp_path / "plans"), out=io.StringIO(),
                 launcher=launcher, parallel=2)
    assert launcher.handles[0].signals == [signal.SIGTERM]
