"""The CI examples in docs/ci stay runnable: their plan loads and names what exists, and the command each
workflow runs is a valid `splitbrain test-all` whose JUnit file and plan folder are the ones it publishes
and keeps."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from splitbrain.harness.cli import build_parser
from splitbrain.harness.plan.model import cells
from splitbrain.harness.plan.toml_plan import load_plan
from splitbrain.harness.plugins import load_target, load_workload

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_gate_plan_loads_and_names_what_exists() -> None:
    plan = load_plan(DOCS / "ci" / "gate.toml")
    found = cells(plan)
    assert {c.expect for c in found} == {"valid", "invalid"}
    for cell in found:
        spec = load_target(cell.target)
        load_workload(cell.workload)
        assert cell.workload in spec.workloads


@pytest.mark.parametrize("workflow", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_workflow_runs_the_plan_and_keeps_what_it_publishes(workflow: str) -> None:
    text = (DOCS / "ci" / workflow).read_text()
    (line,) = [line for line in text.splitlines() if "splitbrain test-all" in line and not line.strip().startswith("#")]
    argv = shlex.split(line.split("splitbrain test-all", 1)[1])
    args = build_parser().parse_args(["test-all", *argv])
    assert Path(DOCS.parent / args.plan.removeprefix("splitbrain/")).is_file()
    assert args.junit and args.store and args.parallel == 2
    kept = re.findall(r"^\s+(?:path:|-) (\S+)/\s*$", text, re.M)
    assert f"{args.store}" in [k.rstrip("/") for k in kept], kept  # the plan folder is an artifact
    published = re.findall(r"(?:report_paths|junit): (\S+)", text)
    assert published == [args.junit]
