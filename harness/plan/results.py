"""What a plan run found: a record per run, a verdict per test, failures grouped, and how it is shown
(the index, index.json; the summary on the console and in summary.txt; the JUnit cases). Pure: records
in, data and text out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitbrain.harness.junit import ERROR, FAILURE, PASSED, SKIPPED, Case, attachment, first_line
from splitbrain.harness.plan.model import (
    ERROR as RUN_ERROR,
)
from splitbrain.harness.plan.model import (
    FAIL,
    MET,
    MISSED,
    NOT_RUN,
    PASS,
    UNKNOWN,
    Cell,
    plan_exit_code,
    run_outcome,
    verdict,
)
from splitbrain.harness.plan.signature import Group, Sighting, Signature, grouped, groups_json

PENDING, RUNNING, DONE, SKIPPED_RUN = "pending", "running", "done", "skipped"
VERDICT_LABELS = {PASS: "PASS", FAIL: "FAIL", UNKNOWN: "UNKNOWN", RUN_ERROR: "ERROR"}
VALID_LABELS = {True: "valid", False: "invalid", "unknown": "unknown"}


@dataclass
class RunRecord:
    """One run of a cell: what it was (seed, repeat), what became of it, where it is."""

    cell: str
    seed: int
    repeat: int
    expect: str
    status: str = PENDING
    valid: Any = None
    exit_code: int | None = None
    error: str | None = None
    interrupted: bool = False
    run_dir: str | None = None
    reason: str = ""
    duration_s: float | None = None
    ops: int | None = None
    faults: int | None = None
    signatures: list[Signature] = field(default_factory=list)
    console: str | None = None

    @property
    def label(self) -> str:
        return f"{self.cell} seed {self.seed} #{self.repeat}"

    @property
    def outcome(self) -> str:
        if self.status == SKIPPED_RUN:
            return SKIPPED_RUN
        if self.status != DONE:
            return NOT_RUN
        return run_outcome(self.expect, self.valid, error=self.error is not None, interrupted=self.interrupted)

    @property
    def repro(self) -> str | None:
        return f"splitbrain repro {self.run_dir}" if self.run_dir else None

    @property
    def report(self) -> str | None:
        if self.run_dir and (Path(self.run_dir) / "report.html").is_file():
            return str(Path(self.run_dir) / "report.html")
        return None

    def verdict_text(self) -> str:
        if self.status == SKIPPED_RUN:
            return "not needed (the test had already passed)"
        if self.status != DONE:
            return "not run"
        text = VALID_LABELS.get(self.valid, "unknown")
        if self.error:
            text = f"failed: {self.error}" if self.valid is not False else text + " (then the run failed)"
        elif self.interrupted:
            text += " (interrupted)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "repeat": self.repeat, "status": self.status, "outcome": self.outcome,
                "valid": self.valid, "exit_code": self.exit_code, "error": self.error,
                "interrupted": self.interrupted, "run_dir": self.run_dir, "report": self.report,
                "repro": self.repro, "reason": self.reason, "duration_s": self.duration_s, "ops": self.ops,
                "faults": self.faults, "signatures": [str(s) for s in self.signatures], "console": self.console}


@dataclass
class PlanResult:
    """A plan run: its cells and their runs' records (in the order they are run)."""

    plan: str
    source: str | None
    plan_dir: Path
    cells: Sequence[Cell]
    records: dict[str, list[RunRecord]]
    parallel: int = 1
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished: dt.datetime | None = None
    interrupted_by: str | None = None
    interrupted_signum: int | None = None

    def all_records(self) -> list[RunRecord]:
        return [r for cell in self.cells for r in self.records[cell.name]]

    def verdict(self, cell: Cell) -> str:
        outcomes = [r.outcome for r in self.records[cell.name] if r.outcome != SKIPPED_RUN]
        return verdict(cell.policy, outcomes, cell.runs)

    def met(self, cell: Cell) -> int:
        return sum(1 for r in self.records[cell.name] if r.outcome == MET)

    @property
    def exit_code(self) -> int:
        code = plan_exit_code([self.verdict(c) for c in self.cells])
        if self.interrupted_signum is not None and code != 1:
            return 128 + self.interrupted_signum  # an interrupted plan never passes the gate
        return code

    def groups(self) -> list[Group]:
        sightings = []
        for cell in self.cells:
            for r in self.records[cell.name]:
                if r.signatures:
                    ref = {"test": cell.name, "seed": r.seed, "repeat": r.repeat, "run_dir": r.run_dir,
                           "repro": r.repro, "report": r.report}
                    sightings.append(Sighting(r.signatures, ref, r.ops or 0, r.faults or 0,
                                              cell.expect == "invalid", r.reason))
        return grouped(sightings)

    # -- the index ---------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan, "source": self.source, "plan_dir": str(self.plan_dir), "parallel": self.parallel,
            "started": self.started.isoformat(), "finished": self.finished.isoformat() if self.finished else None,
            "interrupted_by": self.interrupted_by, "exit_code": self.exit_code if self.finished else None,
            "tests": [{"name": c.name, "test": c.test, "target": c.target, "workload": c.workload,
                       "nemesis": list(c.nemesis), "options": dict(c.options), "settings": _jsonable(c.settings),
                       "expect": c.expect, "policy": c.policy, "verdict": self.verdict(c), "met": self.met(c),
                       "planned_runs": c.runs, "runs": [r.to_json() for r in self.records[c.name]]}
                      for c in self.cells],
            "groups": groups_json(self.groups()),
        }

    # -- the summary -------------------------------------------------------------------------------------

    def summary_lines(self, junit: str | None = None) -> list[str]:
        verdicts = [self.verdict(c) for c in self.cells]
        passed = sum(1 for v in verdicts if v == PASS)
        note = f", interrupted by {self.interrupted_by}" if self.interrupted_by else ""
        lines = [f"== plan {self.plan}: {passed} of {len(self.cells)} test(s) met their expectation{note} "
                 f"(exit {self.exit_code})"]
        width = max(len(c.name) for c in self.cells)
        for cell, v in zip(self.cells, verdicts, strict=True):
            lines.append(f"{VERDICT_LABELS[v]:<8} {cell.name:<{width}}  {self._tally(cell)}")
            if v != PASS:
                for r in self.records[cell.name]:
                    if r.outcome in (MISSED, UNKNOWN, RUN_ERROR):
                        lines.append(f"{'':<8} {'':<{width}}    seed {r.seed} #{r.repeat}: {r.verdict_text()}"
                                     f"{'  ' + r.run_dir if r.run_dir else ''}")
        groups = self.groups()
        if groups:
            lines.append(f"invalid histories by signature (checker / anomaly / f / target), {len(groups)} "
                         "group(s), simplest sighting first:")
            for i, g in enumerate(groups, 1):
                s = g.simplest
                why = "expected: a bug hunt" if g.expected else "UNEXPECTED"
                lines.append(f"  {i}. {g.signature}  {len(g.sightings)} sighting(s)  ({why})")
                if len(g.signatures) > 1:
                    lines.append("     seen with it: " + "; ".join(f"{sig} ({n})" for sig, n in g.signatures[1:]))
                lines.append(f"     simplest: {s.ref['test']} seed {s.ref['seed']} #{s.ref['repeat']}, "
                             f"{s.ops} ops, {s.faults} fault step(s)  {s.ref.get('run_dir')}")
                if s.reason:
                    lines.append(f"     {s.reason}")
                if s.ref.get("repro"):
                    lines.append(f"     repro: {s.ref['repro']}")
        lines.append(f"index: {self.plan_dir / 'index.json'}" + (f"  junit: {junit}" if junit else ""))
        return lines

    def _tally(self, cell: Cell) -> str:
        records = self.records[cell.name]
        found = "found the bug" if cell.expect == "invalid" else "valid"
        done = [r for r in records if r.status == DONE]
        text = f"expect {cell.expect}, {cell.policy}: {self.met(cell)} of {cell.runs} run(s) {found}"
        skipped = sum(1 for r in records if r.status == SKIPPED_RUN)
        if skipped:
            text += f" ({skipped} not needed)"
        if len(done) + skipped < cell.runs:
            text += f" ({cell.runs - len(done) - skipped} not run)"
        return f"{text}  [{cell.describe()}]"

    # -- JUnit -------------------------------------------------------------------------------------------

    def junit_cases(self) -> list[Case]:
        """A case per run. A run that missed its expectation is a failure only when its test failed its
        policy (a bug hunt that found its bug on one seed passes, its other seeds too)."""
        cases = []
        for cell in self.cells:
            cell_verdict = self.verdict(cell)
            for r in self.records[cell.name]:
                cases.append(self._case(cell, cell_verdict, r))
        return cases

    def _case(self, cell: Cell, cell_verdict: str, r: RunRecord) -> Case:
        lines = [f"test: {cell.name} ({cell.describe()})", f"expect: {cell.expect}, policy {cell.policy}: "
                 f"{self.met(cell)} of {cell.runs} run(s) met it; the test: {VERDICT_LABELS[cell_verdict]}",
                 f"seed: {r.seed}, repeat {r.repeat}", f"verdict: {r.verdict_text()}"]
        if r.signatures:
            lines.append("signature: " + "; ".join(map(str, r.signatures)))
        if r.run_dir:
            lines += [f"run: {r.run_dir}", f"repro: {r.repro}"]
        if r.console:
            lines.append(f"console: {r.console}")
        output_lines = [f"verdict: {r.verdict_text()}" + (" (as expected)" if r.outcome == MET else "")]
        if r.reason:
            output_lines.append(r.reason)
        output_lines += [f"report: {r.report}", attachment(r.report)] if r.report else \
            [f"run: {r.run_dir}"] if r.run_dir else []
        output = "\n".join(output_lines)
        case = Case(name=r.label, classname=f"{self.plan}.{cell.name}", time_s=r.duration_s or 0.0,
                    details="\n".join(lines), output=output)
        outcome = r.outcome
        if outcome == SKIPPED_RUN or outcome == NOT_RUN:
            case.status = SKIPPED
            case.message = r.verdict_text()
            case.details = ""
        elif outcome == MET or cell_verdict == PASS:
            case.status = PASSED
        elif outcome == MISSED:
            case.status, case.kind = FAILURE, f"expected-{cell.expect}"
            case.message = (r.reason or f"the history is {VALID_LABELS.get(r.valid)}") if r.valid is False else \
                f"expected invalid (the bug found), the history is {VALID_LABELS.get(r.valid)}"
            case.message = f"seed {r.seed}: {case.message}"
        else:
            case.status = ERROR
            case.kind = "run-failed" if outcome == RUN_ERROR else "unknown"
            case.message = f"seed {r.seed}: {r.verdict_text() if outcome == RUN_ERROR else r.reason or 'unknown'}"
        return case


def _jsonable(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def one_line(text: Any) -> str:
    return first_line(text or "")
