"""Faults in words: what each fault span of a history did, for the timeline's bands and the summary.

Which nemesis op starts and ends a fault, and its kind, is histories/faults.py's (the one vocabulary);
this module only says what the nemesis answered, in a line.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from splitbrain.histories.faults import FaultWindow


def kind_name(span: FaultWindow) -> str:
    return span.kind


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def partition_text(grudge: dict[str, list[str]]) -> str:
    """``node3 | node1 node2 node4 node5`` when the grudge splits the nodes into groups that cannot reach
    each other; else who drops whom (a ring or a bridge)."""
    nodes = sorted(set(grudge) | {n for dropped in grudge.values() for n in dropped})
    cut = {(a, b) for a, dropped in grudge.items() for b in dropped}
    talks = {n: {m for m in nodes if m != n and (n, m) not in cut and (m, n) not in cut} for n in nodes}
    groups: list[list[str]] = []
    seen: set[str] = set()
    for n in nodes:
        if n in seen:
            continue
        group, todo = [], [n]
        seen.add(n)
        while todo:
            x = todo.pop()
            group.append(x)
            for y in talks[x] - seen:
                seen.add(y)
                todo.append(y)
        groups.append(sorted(group))
    clean = all(talks[a] >= set(g) - {a} for g in groups for a in g)
    if clean and len(groups) > 1:
        return " | ".join(" ".join(g) for g in sorted(groups, key=len))
    return "; ".join(f"{a} drops {' '.join(sorted(d))}" for a, d in sorted(grudge.items()) if d)


def describe_fault(span: FaultWindow) -> str:
    """What the fault did, e.g. ``partition primaries: node3 | node1 node2 node4 node5``."""
    v = span.value
    name = kind_name(span)
    if span.f == "start-partition" and isinstance(v, dict) and isinstance(v.get("grudge"), dict):
        return f"{name} {v.get('kind', '')}: {partition_text(v['grudge'])}".replace("  ", " ")
    if span.f in ("kill", "pause") and isinstance(v, dict) and isinstance(v.get(span.f), list):
        return f"{name} {' '.join(map(str, v[span.f])) or '(no node)'}"
    if span.f == "bump-clock" and isinstance(v, dict):
        return f"{name} " + ", ".join(f"{n} {ms:+g} ms" if isinstance(ms, (int, float)) else f"{n} {ms}"
                                      for n, ms in sorted(v.items()))
    if span.f == "start-packet" and isinstance(v, dict):
        what = ", ".join(f"{k} {v[k]}" for k in sorted(v) if k not in ("nodes", "mechanism") and v[k])
        return f"{name} {what} on {' '.join(map(str, v.get('nodes', [])))}"
    return f"{name} {_short(v)}" if v is not None else name


def fault_counts(spans: list[FaultWindow]) -> dict[str, dict[str, int]]:
    """Per kind: how many faults the nemesis applied, and how many it reported failed (or only partly
    applied: an error in its answer)."""
    applied = Counter(kind_name(s) for s in spans if not s.error)
    failed = Counter(kind_name(s) for s in spans if s.error)
    return {k: {"applied": applied[k], "failed": failed[k]} for k in sorted(applied | failed)}
