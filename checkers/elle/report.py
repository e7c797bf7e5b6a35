"""Turning anomalies and cycles into a Result: validity under a consistency model, the models ruled out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from checkers.elle.consistency import anomaly_order, forbidden_anomalies, impossible_models, weakest_models
from checkers.elle.explain import EdgeExplainer, cycle_dot, cycle_text, step_reasons, txn_names
from checkers.elle.graph import KIND_NAMES, Cycle, SearchOutcome
from checkers.elle.txn import Txn
from checkers.result import Result

# Text explanations list at most this many examples of one anomaly type (details keep them all).
EXPLAINED_PER_TYPE = 5


def cycle_details(cycle: Cycle, txns: Sequence[Txn], explainer: EdgeExplainer) -> dict[str, Any]:
    names = txn_names(cycle)
    return {
        "anomaly": cycle.anomaly,
        "txns": [{"name": name, "index": txns[t].call, "process": txns[t].process, "type": txns[t].type,
                  "value": [list(m) for m in txns[t].mops]} for t, name in names.items()],
        "steps": [{"from": names[a], "to": names[b], "kind": KIND_NAMES[k], "reason": reason}
                  for (a, b, k), reason in zip(cycle.steps, step_reasons(cycle, txns, explainer), strict=True)],
        "text": cycle_text(cycle, txns, explainer),
        "dot": cycle_dot(cycle, txns, explainer),
    }


def op_ref(t: Txn) -> dict[str, Any]:
    """How a non-cycle anomaly names the txn involved."""
    return {"index": t.call, "process": t.process, "type": t.type, "value": [list(m) for m in t.mops]}


def assemble(*, consistency_model: str, anomalies: Mapping[str, list[dict[str, Any]]], outcome: SearchOutcome,
             txns: Sequence[Txn], explainer: EdgeExplainer, stats: dict[str, Any],
             notes: Sequence[str] = ()) -> Result:
    """The Result: ``valid`` False iff an anomaly the model forbids is present; "unknown" when a cycle
    search gave up and nothing forbidden was found; details list anomalies, cycles and ruled-out models."""
    found: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in anomalies.items() if v}
    cycles = [cycle_details(c, txns, explainer) for c in outcome.cycles]
    for c in cycles:
        found.setdefault(c["anomaly"], []).append(c)
    names = sorted(found, key=anomaly_order)
    forbidden = forbidden_anomalies(consistency_model)
    violated = [a for a in names if a in forbidden]
    impossible = impossible_models(names)
    weakest = weakest_models(impossible)
    if violated:
        valid: bool | str = False
    elif outcome.timeouts:
        valid = "unknown"
    else:
        valid = True
    details: dict[str, Any] = {
        "consistency_model": consistency_model,
        "anomaly_types": names,
        "anomalies": {a: found[a] for a in names},
        "cycles": cycles,
        "not": weakest,
        "also_not": sorted(impossible - set(weakest)),
        "stats": stats,
    }
    if outcome.timeouts:
        details["cycle_search_timeout"] = {"component_sizes": outcome.timeouts}
    if notes:
        details["notes"] = list(notes)
    return Result(valid, details, _explanation(consistency_model, violated, names, found, weakest, outcome, notes))


def _explanation(model: str, violated: list[str], names: list[str], found: Mapping[str, list[dict[str, Any]]],
                 weakest: list[str], outcome: SearchOutcome, notes: Sequence[str]) -> str:
    lines: list[str] = []
    if violated:
        lines.append(f"not {model}: found {', '.join(violated)}"
                     + (f"; the history is not {', '.join(weakest)} (nor anything stronger)" if weakest else ""))
    elif names:
        lines.append(f"{model} allows what was found ({', '.join(names)}); it is not {', '.join(weakest)}")
    if outcome.timeouts:
        lines.append(f"cycle search gave up in components of sizes {outcome.timeouts}: "
                     "anomalies there may be missing")
    for name in names:
        cases = found[name]
        for case in cases[:EXPLAINED_PER_TYPE]:
            lines.append(case["text"] if "text" in case else f"{name}: {case}")
        if len(cases) > EXPLAINED_PER_TYPE:
            lines.append(f"... and {len(cases) - EXPLAINED_PER_TYPE} more {name}")
    lines.extend(notes)
    return "\n".join(lines)

