"""The deterministic simulator: exact replay, valid histories without bugs, and each bug caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from splitbrain.histories.jsonl import read_jsonl, write_jsonl
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.cli import run_sim_cli
from splitbrain.targets.raft.sim.faults import FAULTS, Step, parse_faults
from splitbrain.targets.raft.sim.simulate import reproduction, simulate
from splitbrain.targets.raft.sim.workload import Workload

MIXED = Workload(lock_clients=2)  # 2 lock clients + 3 kv clients


@pytest.mark.timeout(60)
def test_the_same_seed_gives_a_byte_identical_history(tmp_path):
    paths = []
    for run in range(2):
        result = simulate(11, ops=600, workload=MIXED)
        paths.append(tmp_path / f"run{run}.jsonl")
        write_jsonl(result.history, str(paths[-1]))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = tmp_path / "other.jsonl"
    write_jsonl(simulate(12, ops=600, workload=MIXED).history, str(other))
    assert other.read_bytes() != paths[0].read_bytes()


@pytest.mark.timeout(120)
def test_the_same_seed_replays_byte_for_byte_in_fresh_interpreters_with_different_hash_seeds(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; from splitbrain.histories.jsonl import write_jsonl; from splitbrain.targets.raft.sim.simulate import simulate; "
            "from splitbrain.targets.raft.sim.workload import Workload; "
            "write_jsonl(simulate(21, ops=400, workload=Workload(lock_clients=2)).history, sys.argv[1])")
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"h{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=repo, env=env, timeout=100)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0]


@pytest.mark.timeout(60)
def test_the_history_follows_the_project_conventions(tmp_path):
    result = simulate(5, ops=800, workload=MIXED)
    path = tmp_path / "h.jsonl"
    write_jsonl(result.history, str(path))
    history = read_jsonl(str(path))  # pairs every completion with its invocation, or raises
    assert [op.index for op in history] == list(range(len(history)))
    times = [op.time for op in history]
    assert times == sorted(times)
    ops = history.operations()
    assert len(ops) == 800
    for o in ops:
        assert o.type in ("ok", "fail", "info")
        if o.f == "acquire" and o.type == "ok":
            assert o.value["token"] > 0
    retired: set[int] = set()  # a process that saw an info never invokes again (its successor: +concurrency)
    for o in ops:
        assert o.process not in retired
        if o.type == "info":
            retired.add(o.process)
    assert retired, "this seed has timeouts; the rule above was exercised"
    assert history.nemesis_ops(), "the nemesis records what it did"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_without_bugs_thousands_of_ops_under_every_fault_stay_valid(seed):
    result = simulate(seed, ops=1500, faults=FAULTS, workload=MIXED)
    verdict = check_sim(result)
    assert verdict.valid is True, verdict.explanation
    assert result.stats["ok"] > 500  # the cluster did make progress through the faults
    kinds = {op.f for op in result.history.nemesis_ops()}
    assert len(kinds) >= 4, kinds


def _first_caught(bug: str, faults: tuple[str, ...], workload: Workload, max_seeds: int) -> int | None:
    for seed in range(max_seeds):
        if check_sim(simulate(seed, ops=1500, faults=faults, bug=bug, workload=workload)).valid is False:
            return seed
    return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("bug, faults, workload", [
    ("stale-read", ("partition",), Workload()),
    ("early-ack", ("partition", "crash"), Workload()),
    ("no-fsync", ("crash",), Workload()),
    ("no-fencing", (), MIXED),
    # Clients that give up sooner spend less time blocked on the cut-off leader, reading from it instead.
    ("lease-read", ("partition", "skew"), Workload(timeout_ms=200)),
])
def test_each_bug_is_caught_within_a_few_seeds_of_the_random_nemesis(bug, faults, workload):
    seed = _first_caught(bug, faults, workload, max_seeds=10)
    assert seed is not None, f"{bug} not caught in 10 seeds"


LEASE_SCHEDULE = [Step("wait", (), 300), Step("skew", ("leader", -2000), 10),
                  Step("isolate", ("leader",), 1500), Step("heal", (), 300)]


@pytest.mark.timeout(120)
def test_lease_read_is_caught_when_the_leaders_clock_steps_back_before_it_is_cut_off():
    caught = next((seed for seed in range(5)
                   if check_sim(simulate(seed, ops=10**9, bug="lease-read", schedule=LEASE_SCHEDULE)).valid is False),
                  None)
    assert caught is not None, "lease-read survived a stepped-back clock on an isolated leader"


@pytest.mark.timeout(120)
def test_lease_read_is_correct_with_synchronized_clocks():
    twin = [s if s.action != "skew" else Step("wait", (), s.run_ms) for s in LEASE_SCHEDULE]
    for seed in range(3):
        verdict = check_sim(simulate(seed, ops=10**9, bug="lease-read", schedule=twin))
        assert verdict.valid is True, verdict.explanation
    for seed in range(2):  # and under the random nemesis without clock faults
        verdict = check_sim(simulate(seed, ops=1500, faults=("partition", "crash", "drop"), bug="lease-read"))
        assert verdict.valid is True, verdict.explanation


@pytest.mark.timeout(60)
def test_a_schedule_prints_as_a_runnable_reproduction():
    schedule = [Step("wait", (), 200), Step("crash", ("leader",), 100), Step("restart", ("all",), 100)]
    first = simulate(4, nodes=3, ops=10**9, schedule=schedule, workload=Workload(concurrency=3))
    source = reproduction(4, schedule, nodes=3, workload=Workload(concurrency=3))
    namespace: dict = {}
    exec(compile(source.replace("print(", "(lambda *a, **k: None)("), "<repro>", "exec"), namespace)
    assert [o.to_dict() for o in namespace["result"].history] == [o.to_dict() for o in first.history]


def test_bad_options_are_one_clear_error():
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("partition,meteor")
    with pytest.raises(ValueError, match="unknown bug"):
        simulate(0, ops=1, bug="typo")
    with pytest.raises(ValueError, match="unknown step action"):
        Step("explode")


@pytest.mark.timeout(120)
def test_run_sim_cli_prints_the_verdict_and_seed_and_writes_the_history(tmp_path, capsys):
    assert run_sim_cli(3, nodes=3, ops=300, faults="partition,crash", bug=None, out_dir=str(tmp_path / "ok")) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "seed 3" in out
    assert len(read_jsonl(str(tmp_path / "ok" / "history.jsonl")).operations()) == 300
    assert (tmp_path / "ok" / "results.json").exists()
    assert run_sim_cli(0, nodes=5, ops=800, faults="none", bug="no-fencing", out_dir=str(tmp_path / "bad")) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "seed 0" in out
    assert run_sim_cli(0, faults="meteor", out_dir=None) == 3
    assert capsys.readouterr().out.startswith("error: unknown fault")
