"""Each checker's evidence, drawn from what its result already says (results.json as it is).

- linearizability: the failing key's window, Porcupine style: the ops around the one that cannot be
  placed, the longest linearizable prefix numbered in its order with the state after each op, the
  concurrent ops;
- Elle (list-append, rw-register): each cycle as a Graphviz drawing of the DOT the checker made (text
  when Graphviz is not installed), and the other anomalies;
- lock safety: the overlapping holds as marks over the timeline, the fencing violation;
- set, unique ids, applied-once, counter: the lost, duplicated or out-of-bounds elements, with their ops.

Which checker made a result is told by its shape, so a history checked by ``splitbrain check`` and a run's
results.json are drawn the same way. Every piece marks its ops (by invocation index) for the timeline.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from splitbrain.checkers.linearizable import op_text
from splitbrain.harness.report.timeline import Mark, timeline_data
from splitbrain.histories.faults import FaultWindow
from splitbrain.histories.history import History, Operation, hashable

MAX_CYCLES_DRAWN = 10
MAX_OVERLAPS_DRAWN = 5
MAX_ROWS = 100
WINDOW_BEFORE, WINDOW_AFTER = 12, 6  # ops of the failing key around the failing op, Porcupine's window
DOT_TIMEOUT_S = 20
SUMMARY_ONLY = ("stats", "availability")  # drawn in the summary, no evidence of their own
# Result fields that list problems, each a table (checkers/basic.py, exactly_once.py).
PROBLEM_LISTS = {"lost": "acknowledged but lost", "unexpected": "read but never attempted",
                 "failed_read": "read although every attempt failed", "duplicated": "duplicated",
                 "id_mismatch": "ids that are not their request's position", "errors": "reads out of bounds"}


@dataclass
class Evidence:
    checker: str
    kind: str                      # linearizable | elle | lock | elements | text
    valid: Any
    explanation: str
    data: dict[str, Any] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)   # invocation index -> failing | concurrent | evidence
    labels: dict[int, str] = field(default_factory=dict)
    focus: int | None = None       # the invocation index the timeline centres on
    marks: list[Mark] = field(default_factory=list)


class OpLookup:
    """Operations by the index of their invocation or of their completion (checkers name either)."""

    def __init__(self, history: History) -> None:
        self.by_index: dict[int, Operation] = {}
        for o in history.operations():
            self.by_index[o.call] = o
            if o.ret is not None:
                self.by_index[o.ret] = o

    def get(self, index: Any) -> Operation | None:
        return self.by_index.get(index) if isinstance(index, int) else None

    def text(self, index: Any) -> str:
        o = self.get(index)
        return op_text(o) if o is not None else f"index {index}"


def evidence_for(name: str, result: dict[str, Any], history: History | None, spans: Sequence[FaultWindow],
                 lookup: OpLookup | None) -> Evidence | None:
    """The evidence of one checker's result; None for those the summary covers (stats, availability)."""
    if name in SUMMARY_ONLY:
        return None
    valid = result.get("valid")
    ev = Evidence(name, "text", valid, str(result.get("explanation", "")))
    if history is not None and lookup is not None:
        if isinstance(result.get("failure"), dict) and isinstance(result["failure"].get("op"), dict):
            _linearizable(ev, result["failure"], history, spans, lookup)
        elif isinstance(result.get("cycles"), list):
            _elle(ev, result, lookup)
        elif isinstance(result.get("mutual_exclusion"), dict):
            _lock(ev, result, lookup)
        elif any(isinstance(result.get(k), list) and result.get(k) for k in PROBLEM_LISTS):
            _elements(ev, result, lookup)
    if ev.kind == "text":
        if valid is True and not ev.explanation:
            ev.data["details"] = ""
        else:
            details = {k: v for k, v in result.items() if k not in ("explanation",)}
            ev.data["details"] = json.dumps(details, indent=1, default=str)[:20_000]
    return ev


# -- linearizability -----------------------------------------------------------------------------------

def _linearizable(ev: Evidence, failure: dict[str, Any], history: History, spans: Sequence[FaultWindow],
                  lookup: OpLookup) -> None:
    ev.kind = "linearizable"
    failing = lookup.get(failure["op"].get("invoke_index"))
    if failing is None:
        ev.kind = "text"
        return
    if "key" in failure:
        key = hashable(failure["key"])
        part = [o for o in history.operations() if hashable(o.key) == key]
    else:
        part = list(history.operations())
    order = {call: k + 1 for k, call in enumerate(failure.get("partial_linearization", []))}
    states = {call: state for call, state in failure.get("prefix_states", [])}
    concurrent = {c["invoke_index"] for c in failure.get("concurrent", []) if isinstance(c, dict)}
    if failing not in part:  # a key that did not survive the trip through JSON as it was: look at every op
        part = list(history.operations())
    pos = part.index(failing)
    window = part[max(0, pos - WINDOW_BEFORE): pos + WINDOW_AFTER + 1]
    window += [o for o in part if o.call in concurrent and o not in window]
    window.sort(key=lambda o: o.call)
    roles = {o.call: "prefix" for o in window if o.call in order}
    roles.update({c: "concurrent" for c in concurrent})
    roles[failing.call] = "failing"
    labels = {o.call: f"#{order[o.call]}" + (f" → {states[o.call]}" if o.call in states else "")
              for o in window if o.call in order}
    labels[failing.call] = "cannot be placed"
    ev.data = {
        "key": failure.get("key"),
        "failing": op_text(failing),
        "final_states": failure.get("final_states", []),
        "prefix_length": failure.get("longest_linearized_prefix", len(order)),
        "partition_size": sum(1 for o in part if o.type != "fail"),  # the checker drops failed ops
        "prefix": [{"order": order.get(call, "?"), "op": lookup.text(call), "state": state}
                   for call, state in failure.get("prefix_states", [])],
        "concurrent": [lookup.text(c) for c in sorted(concurrent)],
        "window": timeline_data(history, spans, roles=roles, labels=labels, focus=failing.call,
                                operations=window),
    }
    ev.roles = {c: "concurrent" for c in concurrent}
    ev.roles[failing.call] = "failing"
    ev.labels = {failing.call: "cannot be linearized"}
    ev.focus = failing.call


# -- Elle ------------------------------------------------------------------------------------------------

def dot_svg(dot: str) -> str | None:
    """Graphviz's drawing of a DOT graph as SVG text; None when ``dot`` is not installed or fails."""
    program = shutil.which("dot")
    if program is None:
        return None
    try:
        done = subprocess.run([program, "-Tsvg"], input=dot, capture_output=True, text=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 and "<svg" in done.stdout else None


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _elle(ev: Evidence, result: dict[str, Any], lookup: OpLookup) -> None:
    ev.kind = "elle"
    cycles = []
    for c in result["cycles"][:MAX_CYCLES_DRAWN]:
        svg = dot_svg(c["dot"]) if isinstance(c.get("dot"), str) else None
        cycles.append({"anomaly": c.get("anomaly", "?"), "text": c.get("text", ""), "dot": c.get("dot", ""),
                       "svg": _data_uri(svg) if svg else None, "steps": c.get("steps", [])})
        for t in c.get("txns", []):
            if isinstance(t.get("index"), int) and lookup.get(t["index"]) is not None:
                ev.roles.setdefault(t["index"], "evidence")
                ev.labels.setdefault(t["index"], str(t.get("name", "")))
                if ev.focus is None:
                    ev.focus = t["index"]
    ev.data = {
        "consistency_model": result.get("consistency_model"),
        "anomaly_counts": result.get("anomaly_counts", {}),
        "not": result.get("not", []), "also_not": result.get("also_not", []),
        "cycles": cycles, "cycles_left_out": max(0, len(result["cycles"]) - MAX_CYCLES_DRAWN),
        "graphviz": shutil.which("dot") is not None,
        "anomalies": {k: [json.dumps(case, default=str) for case in v[:MAX_ROWS]]
                      for k, v in (result.get("anomalies") or {}).items()},
    }


# -- lock safety -----------------------------------------------------------------------------------------

def _grant_mark(grant: dict[str, Any], lookup: OpLookup) -> Mark | None:
    acquire = lookup.get(((grant.get("acquire") or {}).get("invoke") or {}).get("index"))
    if acquire is None or acquire.completion is None:
        return None
    release = lookup.get((((grant.get("release") or {}).get("invoke")) or {}).get("index"))
    label = f"owner {grant.get('owner')} holds token {grant.get('token')}"
    if release is None:
        return Mark(acquire.completion.time, None, acquire.completion.index, None, label + " (never released)")
    return Mark(acquire.completion.time, release.invoke.time, acquire.completion.index, release.call, label)


def _lock(ev: Evidence, result: dict[str, Any], lookup: OpLookup) -> None:
    ev.kind = "lock"
    me, fe = result["mutual_exclusion"], result.get("fencing") or {}
    overlaps = me.get("overlaps") or me.get("undecided_overlaps") or []
    drawn = []
    for overlap in overlaps[:MAX_OVERLAPS_DRAWN]:
        pair = []
        for which in ("first", "second"):
            grant = overlap.get(which) or {}
            mark = _grant_mark(grant, lookup)
            if mark is not None:
                ev.marks.append(mark)
            acquire = ((grant.get("acquire") or {}).get("invoke") or {}).get("index")
            release = ((grant.get("release") or {}).get("invoke") or {}).get("index")
            for index, what in ((acquire, "acquire"), (release, "release")):
                if lookup.get(index) is not None:
                    ev.roles[lookup.get(index).call] = "evidence"  # type: ignore[union-attr]
                    ev.labels[lookup.get(index).call] = f"{what} {grant.get('token')}"  # type: ignore[union-attr]
            pair.append({"owner": grant.get("owner"), "token": grant.get("token"),
                         "acquire": lookup.text(acquire) if acquire is not None else "",
                         "release": lookup.text(release) if release is not None else "never released"})
            if ev.focus is None and which == "second" and lookup.get(acquire) is not None:
                ev.focus = lookup.get(acquire).call  # type: ignore[union-attr]
        drawn.append({"explanation": overlap.get("explanation", ""), "grants": pair})
    fencing = []
    for what, earlier, later in (("token_order", "earlier", "later"), ("stale_write", "accepted", "stale")):
        v = fe.get(what)
        if not isinstance(v, dict):
            continue
        ops = []
        for side, role in ((earlier, "evidence"), (later, "failing")):
            o = lookup.get((v.get(side) or {}).get("index"))
            if o is not None:
                ev.roles[o.call] = role
                ev.labels[o.call] = f"{side} token {v.get(side + '_token')}"
                ops.append(op_text(o))
                if role == "failing" and ev.focus is None:
                    ev.focus = o.call
        fencing.append({"what": what.replace("_", " "), "explanation": v.get("explanation", ""), "ops": ops})
    ev.data = {"overlaps": drawn, "overlap_count": me.get("overlap_count", 0), "fencing": fencing,
               "token_order_violations": fe.get("token_order_violations", 0),
               "stale_write_violations": fe.get("stale_write_violations", 0),
               "lease_assumption": me.get("lease_assumption", "")}


# -- sets, ids, counters ----------------------------------------------------------------------------------

def _elements(ev: Evidence, result: dict[str, Any], lookup: OpLookup) -> None:
    ev.kind = "elements"
    tables = []
    for key, title in PROBLEM_LISTS.items():
        rows = result.get(key)
        if not isinstance(rows, list) or not rows:
            continue
        dicts = all(isinstance(r, dict) for r in rows)
        columns = list(dict.fromkeys(k for r in rows for k in r)) if dicts else ["element"]
        body = []
        for r in rows[:MAX_ROWS]:
            cells = []
            for c in columns:
                v = r.get(c) if dicts else r
                indexes = v if c.endswith("indexes") and isinstance(v, list) else [v] if c.endswith("index") else []
                for i in indexes:
                    o = lookup.get(i)
                    if o is not None:
                        ev.roles.setdefault(o.call, "evidence")
                        ev.labels.setdefault(o.call, f"{key} {r.get('element', r.get('id', '')) if dicts else r}")
                        if ev.focus is None:
                            ev.focus = o.call
                cells.append({"text": json.dumps(v, default=str) if not isinstance(v, str) else v,
                              "title": "; ".join(lookup.text(i) for i in indexes if lookup.get(i) is not None)})
            body.append(cells)
        tables.append({"title": f"{title} ({result.get(key + '_count', len(rows))})", "columns": columns,
                       "rows": body, "left_out": max(0, len(rows) - MAX_ROWS)})
    ev.data = {"tables": tables}
