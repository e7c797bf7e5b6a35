"""A plan file is checked before anything starts: every wrong key, name, option or an empty matrix is one
line naming the file, the line and the key, exit 3, and nothing is created. The same plan written in
Python is the same plan."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from splitbrain import Plan, PlanTest
from splitbrain.harness.cli import main
from splitbrain.harness.plan.key_lines import key_lines, line_of
from splitbrain.harness.plan.model import cells
from splitbrain.harness.plan.toml_plan import parse_plan

GOOD = """\
[plan]
name = "gate"

[defaults]
time_limit = 3
nodes = 3

[[test]]
name = "safe"
workloads = ["register", "lock"]
nemesis = ["partition", "kill,pause"]
seeds = [1, 2]

[[test]]
name = "stale-read"
bugs = "stale-read"
nemesis = "partition"
seeds = [1, 2, 3]
expect = "invalid"
"""


def test_key_lines_follow_tables_arrays_inline_tables_and_multiline_values() -> None:
    text = textwrap.dedent('''\
        # a comment [not a table]
        [plan]
        name = "x"   # trailing
        [[test]]
        name = "a"
        nemesis = [
          "partition",  # one
          ["kill", "pause"],
        ]
        note = """several
        [[test]]
        lines"""
        options = [{ read = "local" }, { lb = 'nginx', "quoted.key" = 1 }]
        [[test]]
        name = 'b'
        a.b = 2
        [test.sub]
        k = 3
        ''')
    lines = key_lines(text)
    assert lines[("plan", "name")] == 3
    assert lines[("test", 0, "nemesis")] == 6
    assert lines[("test", 0, "nemesis", 1)] == 8
    assert lines[("test", 0, "options", 1, "lb")] == 13
    assert lines[("test", 0, "options", 1, "quoted.key")] == 13
    assert lines[("test", 1, "name")] == 15  # the [[test]] inside the string is not a table
    assert lines[("test", 1, "a", "b")] == 16
    assert lines[("test", 1, "sub", "k")] == 18
    assert line_of(lines, ("test", 1, "nothing", "here")) == 14  # the nearest ancestor: the table


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(textwrap.dedent(text))
    return path


def line_number(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


BAD_PLANS = [
    ("unknown key in a test", GOOD.replace('seeds = [1, 2, 3]', 'sedes = [1, 2, 3]'), "sedes",
     ["[[test]] #2 (stale-read)", "unknown key 'sedes'", "did you mean 'seeds'?"]),
    ("unknown key in defaults", GOOD.replace("nodes = 3", "nodez = 3"), "nodez", ["[defaults]", "'nodez'"]),
    ("unknown table", GOOD + "[extra]\nx = 1\n", "[extra]", ["unknown key 'extra'"]),
    ("unknown key in [plan]", GOOD.replace('name = "gate"', 'title = "gate"'), "title", ["[plan]", "'title'"]),
    ("an empty matrix", GOOD.replace('workloads = ["register", "lock"]', "workloads = []"), "workloads = []",
     ["key workloads", "empty matrix"]),
    ("an unknown fault kind on its own line", GOOD.replace('nemesis = ["partition", "kill,pause"]',
                                                          'nemesis = [\n  "partition",\n  "kill,pouse",\n]'),
     '"kill,pouse"', ["key nemesis.1", "unknown fault kind pouse"]),
    ("a wrong type", GOOD.replace("seeds = [1, 2]", 'seeds = ["one"]'), 'seeds = ["one"]',
     ["key seeds.0", "expected a whole number"]),
    ("a wrong expectation", GOOD.replace('expect = "invalid"', 'expect = "broken"'), 'expect = "broken"',
     ["key expect", "valid, invalid"]),
    ("a wrong policy", GOOD.replace('expect = "invalid"', 'policy = "some"'), 'policy = "some"',
     ["key policy", "all, most, any"]),
    ("a name that is not a folder name", GOOD.replace('name = "safe"', 'name = "raft/safe"'), 'name = "raft/safe"',
     ["key name", "expected a name of 1-60 letters"]),
    ("a test without a name", GOOD.replace('name = "safe"\n', ""), "[[test]]", ["#1", "name missing"]),
    ("two tests of one name", GOOD.replace('name = "stale-read"', 'name = "safe"  # again'), "# again",
     ["#2 (safe)", "key name", "distinct names"]),
    ("not TOML", GOOD.replace('nodes = 3', 'nodes = = 3'), "nodes = = 3", ["not valid TOML"]),
    ("no tests", "[plan]\nname = 'x'\n", "[plan]", ["no [[test]] tables"]),
    # resolved by name before anything starts (no root needed: these fail before the nodes are looked at)
    ("an unknown target", GOOD.replace('name = "safe"', 'name = "safe"\ntargets = "raff"'), 'targets = "raff"',
     ["key targets", "raff"]),
    ("an unknown workload", GOOD.replace('workloads = ["register", "lock"]', 'workloads = ["register", "lok"]'),
     'workloads = ["register", "lok"]', ["key workloads", "lok"]),
    ("an unknown target option", GOOD.replace('name = "safe"', 'name = "safe"\noptions = { reed = "local" }'),
     'options = { reed = "local" }', ["key options", "no option reed"]),
    ("a bad limit inherited from [defaults]", GOOD.replace("time_limit = 3", "time_limit = -1"),
     "time_limit = -1", ["key time_limit", "--time-limit must be more than 0"]),
    ("a bug for a target without bugs", GOOD.replace('bugs = "stale-read"', 'bugs = "stale-read"\ntargets = "etcd"'),
     'bugs = "stale-read"', ["key bugs", "--bug goes with targets that have deliberate bugs"]),
]


@pytest.mark.parametrize("what,text,needle,parts", BAD_PLANS, ids=[b[0] for b in BAD_PLANS])
def test_a_wrong_plan_is_one_line_with_the_file_the_line_and_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        what: str, text: str, needle: str, parts: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    assert main(["test-all", str(path)]) == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    wanted = needle.split("\n")[0]
    assert lines[0].startswith(f"error: {path}:{line_number(text, wanted)}: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]
    assert not (tmp_path / "plans").exists()  # nothing was created


@pytest.mark.parametrize("args,message", [
    (["--only", "nothing-*"], "--only nothing-*: matches none of the plan's tests (safe-register"),
    (["--parallel", "0"], "--parallel must be a whole number from 1 to 64"),
    (["--test-count", "0"], "--test-count must be a whole number from 1 to 10000"),
    (["--pass-policy", "half"], "invalid choice: 'half'"),
    (["--junit", "/nonexistent/dir/out.xml"], "--junit /nonexistent/dir/out.xml: no such directory"),
])
def test_wrong_options_of_test_all_are_one_line_and_exit_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("splitbrain.harness.plan.runner.preflight", lambda plan, cells, parallel: None)
    assert main(["test-all", str(write(tmp_path, GOOD)), *args]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "plans").exists()


def test_a_missing_plan_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-all", str(tmp_path / "nope.toml")]) == 3
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.toml'}: no such plan file"


def test_the_matrix_expands_into_named_cells_with_seeds_and_repeats() -> None:
    plan = parse_plan(GOOD, "gate.toml")
    found = {c.name: c for c in cells(plan)}
    assert list(found) == ["safe-register-partition", "safe-register-kill_pause", "safe-lock-partition",
                           "safe-lock-kill_pause", "stale-read"]
    safe = found["safe-lock-kill_pause"]
    assert (safe.target, safe.workload, safe.nemesis, safe.seeds) == ("raft", "lock", ("kill", "pause"), (1, 2))
    assert (safe.expect, safe.policy, safe.runs) == ("valid", "all", 2)
    bug = found["stale-read"]
    assert (bug.expect, bug.policy, bug.settings["bugs"]) == ("invalid", "any", ("stale-read",))
    options = bug.test_options(3, "plans/x/runs")
    assert (options.seed, options.time_limit, options.nodes, options.name) == (3, 3.0, 3, "stale-read")
    assert options.bugs == ("stale-read",) and options.store == "plans/x/runs"


def test_the_same_plan_in_python_is_the_same_plan() -> None:
    common = {"time_limit": 3, "nodes": 3}
    python = Plan("gate", [
        PlanTest("safe", workloads=["register", "lock"], nemesis=["partition", ["kill", "pause"]], seeds=range(1, 3),
                 **common),
        PlanTest("stale-read", bugs=["stale-read"], nemesis="partition", seeds=[1, 2, 3], expect="invalid", **common),
    ])
    assert cells(python) == cells(parse_plan(GOOD, "gate.toml"))


def test_run_refuses_a_junit_file_it_could_not_write_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--junit", str(tmp_path / "no" / "such" / "dir.xml"), "--store", "runs"]) == 3
    err = capsys.readouterr().err
    assert err.strip() == f"error: --junit {tmp_path}/no/such/dir.xml: no such directory {tmp_path}/no/such"
    assert not (tmp_path / "runs").exists()
