"""Cycles as text a person can follow, and as Graphviz DOT."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any, Protocol

from splitbrain.checkers.elle.graph import KIND_NAMES, PROCESS, REALTIME, Cycle
from splitbrain.checkers.elle.txn import Txn


class EdgeExplainer(Protocol):
    """Says why txn ``a`` precedes txn ``b`` by a data dependency of ``kind`` (ww, wr or rw).

    ``names`` maps txn ids to the names used in the text (T1, T2 ...).
    """

    def data_reason(self, a: Txn, b: Txn, kind: int, names: dict[int, str]) -> str: ...


def _order_reason(a: Txn, b: Txn, kind: int, names: dict[int, str]) -> str:
    if kind == PROCESS:
        return f"process {a.process} executed {names[a.id]} before {names[b.id]}"
    return (f"{names[a.id]} completed (history index {a.ret}) before {names[b.id]} was invoked "
            f"(history index {b.call})")


def txn_names(cycle: Cycle) -> dict[int, str]:
    names: dict[int, str] = {}
    for t in cycle.txns:
        names.setdefault(t, f"T{len(names) + 1}")
    return names


def _mop_text(mops: Sequence[Any]) -> str:
    return json.dumps([list(m) for m in mops], default=str)


def describe_txn(t: Txn) -> str:
    return f"op {t.call} ({t.type}, process {t.process}): {_mop_text(t.mops)}"


def step_reasons(cycle: Cycle, txns: Sequence[Txn], explainer: EdgeExplainer) -> list[str]:
    names = txn_names(cycle)
    out = []
    for a, b, kind in cycle.steps:
        if kind in (PROCESS, REALTIME):
            why = _order_reason(txns[a], txns[b], kind, names)
        else:
            why = explainer.data_reason(txns[a], txns[b], kind, names)
        out.append(f"{names[a]} < {names[b]} because {why} ({KIND_NAMES[kind]})")
    return out


def cycle_text(cycle: Cycle, txns: Sequence[Txn], explainer: EdgeExplainer) -> str:
    """``G-single: T1 = op 10 ...; T1 < T2 because ...; ... a cycle, so no order of the txns exists.``"""
    names = txn_names(cycle)
    legend = "; ".join(f"{name} = {describe_txn(txns[t])}" for t, name in names.items())
    reasons = "; ".join(step_reasons(cycle, txns, explainer))
    return f"{cycle.anomaly}: {legend}. {reasons}: a cycle, so no order of these txns explains the history."


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cycle_dot(cycle: Cycle, txns: Sequence[Txn], explainer: EdgeExplainer) -> str:
    """A Graphviz digraph of one cycle: a node per txn, an edge per step labelled with its reason."""
    names = txn_names(cycle)
    lines = [f"digraph {_dot_quote(cycle.anomaly)} {{", f"  label={_dot_quote(cycle.anomaly)};",
             "  node [shape=box, fontname=monospace];"]
    for t, name in names.items():
        lines.append(f"  {name} [label={_dot_quote(name + ': ' + describe_txn(txns[t]))}];")
    colors = {"ww": "black", "wr": "blue", "rw": "red", "process": "darkgreen", "realtime": "orange"}
    for (a, b, kind), reason in zip(cycle.steps, step_reasons(cycle, txns, explainer), strict=True):
        kind_name = KIND_NAMES[kind]
        lines.append(f"  {names[a]} -> {names[b]} [label={_dot_quote(reason)}, color={colors[kind_name]}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_cycle_dots(cycles: Sequence[dict[str, Any]], directory: str) -> list[str]:
    """Write each cycle's DOT (``details["cycles"][i]["dot"]``) to ``directory/<anomaly>-<i>.dot``.

    Returns the paths written. The directory is created when missing.
    """
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, cycle in enumerate(cycles):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(cycle["anomaly"]))
        path = os.path.join(directory, f"{safe}-{i}.dot")
        with open(path, "w", encoding="utf-8") as f:
            f.write(cycle["dot"])
        paths.append(path)
    return paths
