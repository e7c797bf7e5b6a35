"""The per-run HTML report: what happened, as pictures.

    write_report(run_dir)                       runs/<test>/<stamp>/report.html, at the end of every run
    render_report(inputs) -> str                the page, from a run directory's files or a checked history

One self-contained file (styles, script, data, plots inside; opens from disk with no network): the
summary, a timeline of every process's operations with fault windows shaded, latency and throughput
plots shaded by faults (matplotlib), each checker's evidence drawn, and the node log lines around each
fault and the failure. Bounded however long the run: the timeline keeps a window of operations, the
plots are rasterized points, the excerpts have caps.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from splitbrain.checkers.linearizable import op_text
from splitbrain.harness.report.evidence import Evidence, OpLookup, evidence_for
from splitbrain.harness.report.faults import describe_fault, kind_name
from splitbrain.harness.report.inputs import REPORT_FILE, ReportInputs, history_inputs, run_inputs
from splitbrain.harness.report.node_logs import Event, node_logs
from splitbrain.harness.report.page import asset, render, script_json, svg_data_uri
from splitbrain.harness.report.summary import Summary, console_lines, summary
from splitbrain.harness.report.timeline import is_timed, timeline_data
from splitbrain.histories.faults import fault_windows

__all__ = ["REPORT_FILE", "build_report", "history_inputs", "render_report", "run_inputs", "write_report",
           "write_history_report"]

log = logging.getLogger("splitbrain.report")
RUN_FILES = ("test.json", "history.jsonl", "results.json", "harness.log")


def render_report(inputs: ReportInputs, command: str | None = None) -> tuple[str, Summary]:
    """The report page of ``inputs``, and its summary (for the console)."""
    from markupsafe import Markup

    history = inputs.history
    spans = fault_windows(history) if history is not None else []
    s = summary(inputs, spans, command)
    lookup = OpLookup(history) if history is not None else None
    evidence = [e for name, r in inputs.checkers.items()
                if (e := _evidence(name, r, history, spans, lookup)) is not None]
    roles: dict[int, str] = {}
    labels: dict[int, str] = {}
    marks = []
    focus = None
    for e in evidence:
        for index, role in e.roles.items():
            if roles.get(index) != "failing":
                roles[index] = role
        labels.update({k: v for k, v in e.labels.items() if k not in labels})
        marks += e.marks
        if focus is None and e.valid is not True:
            focus = e.focus
    context: dict[str, Any] = {"title": inputs.title, "s": s, "notes": inputs.notes, "timeline": None,
                               "plots": [], "plots_note": "", "evidence": [], "logs": [], "files": []}
    if history is not None and history.operations():
        t = timeline_data(history, spans, roles=roles, labels=labels, focus=focus, marks=marks)
        context["timeline"] = t
        context["timeline_json"] = script_json(t)
        context["timeline_note"] = _timeline_note(t)
    for e in evidence:
        item = {"checker": e.checker, "kind": e.kind, "valid": e.valid, "explanation": e.explanation, "data": e.data}
        if e.kind == "linearizable":
            item["window_json"] = script_json(e.data["window"])
        context["evidence"].append(item)
    try:
        context["plots"], context["plots_note"] = _plots(history, spans, s.duration_s)
    except Exception as e:  # noqa: BLE001 - the rest of the report is still worth having
        log.exception("report: the plots could not be drawn")
        context["plots_note"] = f"the plots could not be drawn: {type(e).__name__}: {e}"
    if inputs.run_dir is not None:
        events = [Event(f"{describe_fault(sp)} begins", sp.start) for sp in spans]
        events += [Event(f"{kind_name(sp)} ends ({sp.ended_by})", sp.end) for sp in spans if sp.ended_by]
        if focus is not None and lookup is not None and (o := lookup.get(focus)) is not None and is_timed(history):
            events.append(Event(f"the failure: {op_text(o)}", o.invoke.time))
        context["logs"] = node_logs(inputs.run_dir, sorted(events, key=lambda e: e.time_ns), inputs.time_zero)
        context["logs_note"] = ("Lines logged from 1 s before to 2 s after each fault's start and end, and the "
                                "failing operation." if inputs.time_zero is not None else
                                "harness.log has no clock anchor (a run from before reports): the last lines of each log.")
        context["files"] = [f for f in RUN_FILES if (inputs.run_dir / f).is_file()]
    context["js"] = Markup(asset("timeline.js"))
    return render("report.html", **context), s


def _evidence(name: str, result: dict[str, Any], history: Any, spans: Any, lookup: Any) -> Evidence | None:
    """One checker's evidence; a result this report cannot draw is shown as its text, with why."""
    try:
        return evidence_for(name, result, history, spans, lookup)
    except Exception as e:  # noqa: BLE001 - one undrawable result must not cost the whole report
        log.exception("report: the evidence of %s could not be drawn", name)
        ev = Evidence(name, "text", result.get("valid"), str(result.get("explanation", "")))
        ev.data["details"] = f"(this result could not be drawn: {type(e).__name__}: {e})"
        return ev


def _timeline_note(t: dict[str, Any]) -> str:
    text = f"{t['shown']:,} operations in {len(t['lanes'])} lanes"
    if t["left_before"] or t["left_after"]:
        text = (f"{t['shown']:,} of {t['total']:,} operations shown, around the "
                + ("failure" if t["focus"] is not None else "start")
                + f": {t['left_before']:,} before and {t['left_after']:,} after are left out"
                + (f" (but for {t['extra']} the evidence names)" if t["extra"] else "") + f"; {len(t['lanes'])} lanes")
    if not t["timed"]:
        text += "; the ops carry no times, so the axis is their position in the history"
    return text + "."


def _plots(history: Any, spans: Any, duration: float | None) -> tuple[list[tuple[str, str]], str]:
    if history is None or not history.operations():
        return [], "no operations"
    if not is_timed(history) or not duration:
        return [], "the ops carry no times: no latency or throughput to plot"
    from splitbrain.harness.report import plots

    return [("latency-raw", svg_data_uri(plots.latency_raw_svg(history, spans))),
            ("latency-quantiles", svg_data_uri(plots.latency_quantiles_svg(history, spans, duration))),
            ("rate", svg_data_uri(plots.rate_svg(history, spans, duration)))], ""


def _write(path: Path, page: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)  # a reader (serve) never sees half a report


def build_report(run_dir: str | Path) -> tuple[Path, Summary]:
    """Write RUN_DIR/report.html from the run's files as they are; raises OSError when it cannot write."""
    run_dir = Path(run_dir)
    page, s = render_report(run_inputs(run_dir))
    path = run_dir / REPORT_FILE
    _write(path, page)
    return path, s


def write_report(run_dir: Any, *, out: Any = None) -> Path | None:
    """The end-of-run hook: write the run's report.html and, given ``out``, print a short summary and the
    report's path there. Never raises: a report that cannot be drawn is logged (harness.log) and the run's
    outcome stands."""
    path_of = getattr(run_dir, "path", run_dir)  # a store.RunDir or a path
    try:
        path, s = build_report(path_of)
    except Exception as e:  # noqa: BLE001 - a view must not turn a finished run into a failed one
        log.exception("the report of %s could not be written", path_of)
        if out is not None:
            print(f"report: not written ({type(e).__name__}: {e})", file=out)
        return None
    if out is not None:
        print("\n".join(console_lines(s, str(path))), file=out)
    return path


def write_history_report(inputs: ReportInputs, path: Path, command: str | None = None) -> Summary:
    """The report of a history checked by hand (``splitbrain check --report``, ``splitbrain report H``)."""
    page, s = render_report(inputs, command)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, page)
    return s
