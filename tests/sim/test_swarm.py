"""The seed swarm (sim/swarm.py) and exact shrinking (sim/shrink.py), as `splitbrain sim` users rely on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from splitbrain.harness.cli import main
from splitbrain.targets.raft.sim.check import check_sim
from splitbrain.targets.raft.sim.faults import SWARM_FAULTS
from splitbrain.targets.raft.sim.shrink import Case, failing, shrink_case
from splitbrain.targets.raft.sim.simulate import SIM_BUGS, simulate
from splitbrain.targets.raft.sim.swarm import SwarmJob, run_swarm, swarm_config

DEFAULT = SwarmJob(None, tuple(sorted(SWARM_FAULTS)), nodes=5, ops=1000)


def first_failing_seed(bug: str) -> int:
    report = run_swarm(SwarmJob(bug, DEFAULT.pool, DEFAULT.nodes, DEFAULT.ops), range(1, 21))
    assert report.first_failure is not None, f"the default swarm missed bug {bug} on seeds 1-20"
    return report.first_failure.seed


@pytest.mark.timeout(300)
@pytest.mark.parametrize("bug", sorted(SIM_BUGS))
def test_the_default_swarm_finds_every_bug_within_20_seeds(bug: str) -> None:
    assert 1 <= first_failing_seed(bug) <= 20


@pytest.mark.timeout(600)
def test_the_correct_store_stays_valid_over_the_swarm() -> None:
    report = run_swarm(DEFAULT, range(1, 31), run_all=True)
    assert len(report.outcomes) == 30
    assert not report.failures, [(o.seed, o.explanation) for o in report.failures]


def test_each_seed_draws_its_own_mix_and_the_same_one_every_time() -> None:
    configs = [swarm_config(s) for s in range(1, 21)]
    assert configs == [swarm_config(s) for s in range(1, 21)]
    assert len({c.mix.faults for c in configs}) > 5 and len({c.workload.timeout_ms for c in configs}) > 1


@pytest.mark.timeout(120)
def test_a_runs_schedule_and_op_script_replay_it_exactly() -> None:
    cfg = swarm_config(3)
    run = simulate(3, ops=400, bug="lease-read", mix=cfg.mix, workload=cfg.workload)
    replay = Case.of(run, 5, "lease-read").run()
    assert [(o.type, o.process, o.f, o.key, o.value, o.time) for o in replay.history] == \
        [(o.type, o.process, o.f, o.key, o.value, o.time) for o in run.history]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("bug", sorted(SIM_BUGS))
def test_shrinking_a_bugs_first_failing_seed_is_smaller_still_fails_and_repeats(bug: str) -> None:
    seed = first_failing_seed(bug)
    cfg = DEFAULT.config(seed)
    case = Case.of(simulate(seed, ops=DEFAULT.ops, bug=bug, mix=cfg.mix, workload=cfg.workload), 5, bug)
    shrunk = shrink_case(case, max_runs=400)
    small = shrunk.case
    assert small.script.ops < case.script.ops / 10 and len(small.schedule) <= len(case.schedule)
    assert failing(small.run()) & shrunk.signature
    assert check_sim(small.run()).valid is False
    again = shrink_case(case, max_runs=400)
    assert again.case == small and again.runs == shrunk.runs


def test_shrinking_a_valid_seed_is_refused() -> None:
    case = Case.of(simulate(1, ops=100, faults=()), 5, None)
    with pytest.raises(ValueError, match="does not fail"):
        shrink_case(case)


@pytest.mark.timeout(300)
def test_sim_seeds_prints_the_failing_seed_and_a_command_that_reproduces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seeds", "1..20", "--bug", "lease-read", "--jobs", "2"]) == 1
    out = capsys.readouterr().out
    command = out.split("reproduce with: ")[1].split(" --out")[0]
    seed = command.split("--seeds ")[1].split()[0]
    assert command == f"splitbrain sim --seeds {seed} --bug lease-read"
    assert main(command.split()[1:] + ["--shrink", "--max-runs", "300", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"first failing seed {seed}" in out and "shrunk from" in out
    assert (tmp_path / "history.jsonl").exists() and (tmp_path / "shrunk" / "history.jsonl").exists()
    code = (tmp_path / "shrunk" / "repro.py").read_text()
    namespace: dict[str, object] = {}
    exec(compile(code, "repro.py", "exec"), namespace)  # the printed reproduction runs and still fails
    assert check_sim(namespace["result"]).valid is False  # type: ignore[arg-type]


def test_sim_needs_exactly_one_of_seed_and_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "1", "--seeds", "1..3"]) == 3
    assert main(["sim", "--seeds", "9..2"]) == 3
    assert "below the first" in capsys.readouterr().out
