"""The report's summary: what ran, what each checker said, op counts, availability, faults, how to repeat it.
Pure: read from test.json and results.json as they are, and from the history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from splitbrain.checkers.availability import check_availability
from splitbrain.checkers.basic import check_stats
from splitbrain.harness.report.faults import fault_counts
from splitbrain.harness.report.inputs import ReportInputs
from splitbrain.histories.faults import HEAL, FaultWindow
from splitbrain.histories.history import History


@dataclass
class Summary:
    valid: Any                                   # True | False | "unknown" | None (not checked)
    status: str                                  # "" when the run ended normally
    fields: list[tuple[str, str]]
    checkers: list[dict[str, Any]]
    ops: list[tuple[str, dict[str, int]]]
    totals: dict[str, int]
    availability: list[tuple[str, dict[str, Any]]]
    faults: dict[str, dict[str, int]]
    repro: list[str] = field(default_factory=list)
    duration_s: float | None = None


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:240] if lines else ""


def _share(part: dict[str, Any]) -> dict[str, Any]:
    a = part.get("availability")
    return {**part, "share": f"{a * 100:.1f}%" if isinstance(a, (int, float)) else "–"}


def duration_s(history: History | None) -> float | None:
    times = [op.time for op in history or () if op.time >= 0]
    return (max(times) - min(times)) / 1e9 if times else None


def run_status(inputs: ReportInputs) -> str:
    """How the run ended, when not normally: not checked, or stopped before the final heal."""
    if inputs.run_dir is None:
        return ""
    if inputs.results is None:
        return "not checked"
    if inputs.results.get("error"):
        return f"the run failed: {inputs.results['error']}"
    if inputs.results.get("interrupted"):
        return f"interrupted by {inputs.results.get('interrupted_by', 'a signal')}: checked what it recorded"
    h = inputs.history
    if h is not None and not any(op.f == HEAL and not op.is_client for op in h):
        return "ended before the final heal: interrupted, or the run failed"
    return ""


def summary(inputs: ReportInputs, spans: Sequence[FaultWindow], command: str | None = None) -> Summary:
    test = inputs.test or {}
    history = inputs.history
    fields: list[tuple[str, str]] = []
    for label, key in (("target", "target"), ("workload", "workload"), ("nemesis", "nemesis"), ("seed", "seed"),
                       ("nodes", "nodes"), ("remote", "remote"), ("bugs", "bugs"), ("target options", "target_opts")):
        value = test.get(key)
        if value in (None, [], {}, ""):
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
        fields.append((label, str(value)))
    if not test.get("nemesis") and inputs.test is not None:
        fields.append(("nemesis", "none"))
    seconds = duration_s(history)
    if seconds is not None:
        fields.append(("duration", f"{seconds:.2f} s"))
    if inputs.run_dir is not None:
        fields.append(("run", str(inputs.run_dir)))
    elif inputs.history_file is not None:
        fields.append(("history", str(inputs.history_file)))
    checkers = [{"name": name, "valid": r.get("valid"), "line": _first_line(r.get("explanation"))}
                for name, r in inputs.checkers.items()]
    stats = check_stats(history).details if history is not None else {"by_f": {}}
    ops = [(f, c) for f, c in stats["by_f"].items()]
    totals = {k: stats.get(k, 0) for k in ("count", "ok_count", "fail_count", "info_count")}
    availability_result = inputs.checkers.get("availability")
    if availability_result is None and history is not None and spans:
        availability_result = check_availability(history).details
    availability = []
    if availability_result:
        availability = [("under faults", _share(availability_result.get("during_faults", {}))),
                        ("outside faults", _share(availability_result.get("without_faults", {})))]
    repro = []
    if inputs.run_dir is not None and inputs.test is not None:
        repro.append(f"splitbrain repro {inputs.run_dir}")
        repro.append(f"splitbrain analyze {inputs.run_dir}")
    if command:
        repro.append(command)
    valid = inputs.results.get("valid") if inputs.results is not None else None
    return Summary(valid, run_status(inputs), fields, checkers, ops, totals, availability, fault_counts(list(spans)),
                   repro, seconds)


def console_lines(s: Summary, report: str) -> list[str]:
    """The few lines printed after the verdict."""
    t = s.totals
    lines = [f"ops {t['count']}: ok {t['ok_count']}, fail {t['fail_count']}, info {t['info_count']}"
             + (f" in {s.duration_s:.1f} s" if s.duration_s is not None else "")]
    if s.availability:
        lines.append("availability: " + ", ".join(f"{a['share']} ok {label}" for label, a in s.availability))
    if s.faults:
        lines.append("faults: " + ", ".join(f"{k} {c['applied']}" + (f" ({c['failed']} failed)" if c["failed"] else "")
                                           for k, c in s.faults.items()))
    lines.append(f"report: {report}")
    return lines
