"""Turning anomalies and cycles into a Result: validity under a consistency model, the models ruled out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from splitbrain.checkers.elle.consistency import (
    anomaly_order,
    forbidden_anomalies,
    impossible_models,
    weakest_models,
)
from splitbrain.checkers.elle.explain import EdgeExplainer, cycle_dot, cycle_text, step_reasons, txn_names
from splitbrain.checkers.elle.graph import KIND_NAMES, Cycle, SearchOutcome
from splitbrain.checkers.elle.txn import Txn
from splitbrain.checkers.result import Result

# The text explanation shows this many examples of one anomaly type; details keep up to KEPT_PER_TYPE.
EXPLAINED_PER_TYPE = 5
KEPT_PER_TYPE = 1000


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
    search gave up and nothing forbidden was found.

    details: ``anomaly_types`` (every type found, most basic first), ``anomaly_counts``, ``anomalies``
    (non-cycle cases per type), ``cycles`` (each with its anomaly type, txns, steps, text and DOT),
    ``not`` (the weakest models the history violates) and ``also_not`` (the stronger ones). At most
    ``KEPT_PER_TYPE`` cases of one type are kept; the counts are complete.
    """
    counts: dict[str, int] = {k: len(v) for k, v in anomalies.items() if v}
    kept: list[Cycle] = []
    for c in outcome.cycles:
        counts[c.anomaly] = counts.get(c.anomaly, 0) + 1
        if counts[c.anomaly] <= KEPT_PER_TYPE:
            kept.append(c)
    cycles = [cycle_details(c, txns, explainer) for c in kept]
    cases = {k: v[:KEPT_PER_TYPE] for k, v in anomalies.items() if v}
    names = sorted(counts, key=anomaly_order)
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
        "anomaly_counts": {a: counts[a] for a in names},
        "anomalies": {a: cases[a] for a in names if a in cases},
        "cycles": cycles,
        "not": weakest,
        "also_not": sorted(impossible - set(weakest)),
        "stats": stats,
    }
    if outcome.timeouts:
        details["cycle_search_timeout"] = {"component_sizes": outcome.timeouts}
    if notes:
        details["notes"] = list(notes)
    texts: dict[str, list[str]] = {name: [c["text"] for c in v] for name, v in cases.items()}
    for c in cycles:
        texts.setdefault(c["anomaly"], []).append(c["text"])
    return Result(valid, details, _explanation(consistency_model, violated, names, counts, texts, weakest,
                                               outcome, notes))


def _explanation(model: str, violated: list[str], names: list[str], counts: Mapping[str, int],
                 texts: Mapping[str, list[str]], weakest: list[str], outcome: SearchOutcome,
                 notes: Sequence[str]) -> str:
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
        for text in texts.get(name, [])[:EXPLAINED_PER_TYPE]:
            lines.append(text)
        if counts[name] > EXPLAINED_PER_TYPE:
            lines.append(f"... and {counts[name] - EXPLAINED_PER_TYPE} more {name}")
    lines.extend(notes)
    return "\n".join(lines)
