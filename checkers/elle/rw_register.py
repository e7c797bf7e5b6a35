"""Elle's rw-register checker: txns read and write registers (``["r", k, v]``, ``["w", k, v]``).

A read of a register shows one value, not a history, so version orders are only partly known. We infer
exactly what the workload justifies:

- every key starts at nil (null), which precedes every written value;
- written values are unique per key, so a read of v was written by the one txn that wrote v (wr);
- ``wfr_keys`` (default on): a committed txn that read k = a and then wrote k = b installed b after a
  (writes follow reads inside a txn); turn it off for a store that may order a txn's write before a
  version it read (e.g. last-writer-wins by skewed clocks).

From the version order on each key: ww from the writer of a to the writer of b when a directly precedes
b, and rw from every txn that read a to the writer of b. Only a txn's external reads (before its own
write of the key) and final writes (its last write of the key) count, as in Adya's model; reading
another txn's non-final write is G1b.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
from splitbrain.checkers.elle.consistency import NEEDS_PROCESS, NEEDS_REALTIME, canonical_model
from splitbrain.checkers.elle.explain import write_cycle_dots
from splitbrain.checkers.elle.graph import (
    PROCESS,
    REALTIME,
    RW,
    WR,
    WW,
    DependencyGraph,
    find_cycles,
    gc_paused,
)
from splitbrain.checkers.elle.report import assemble, op_ref
from splitbrain.checkers.elle.txn import Txn, process_order, realtime_order, transactions
from splitbrain.checkers.result import Result
from splitbrain.histories.history import History, hashable

DEFAULT_MODEL = "strict-serializable"  # Elle's default
INIT: Any = None  # the initial version of every key


def _duplicate_writes(txns: Sequence[Txn]) -> list[dict[str, Any]]:
    first: dict[tuple[Any, Any], Txn] = {}
    dups = []
    for t in txns:
        for f, k, v in t.operation.invoke.value or ():
            if f == "w":
                key = (hashable(k), hashable(v))
                if v is None:
                    dups.append({"key": key[0], "value": None, "ops": [t.call]})
                elif key in first and first[key] is not t:
                    dups.append({"key": key[0], "value": key[1], "ops": [first[key].call, t.call]})
                first.setdefault(key, t)
    return dups


@dataclass(frozen=True)
class _TxnView:
    """One txn's external reads (first read of k before writing k) and final writes, per key."""

    external_reads: dict[Any, Any]
    final_writes: dict[Any, Any]
    intermediate_writes: set[tuple[Any, Any]]


def _view(t: Txn) -> _TxnView:
    reads: dict[Any, Any] = {}
    writes: dict[Any, Any] = {}
    intermediate: set[tuple[Any, Any]] = set()
    for f, k, v in t.mops:
        if f == "r":
            if k not in writes and k not in reads and t.type == "ok":
                reads[k] = hashable(v)
        else:
            if k in writes:
                intermediate.add((k, writes[k]))
            writes[k] = hashable(v)
    return _TxnView(reads, writes, intermediate)


def _internal_case(t: Txn) -> dict[str, Any] | None:
    """A read that disagrees with the txn's own earlier write or read of the same key."""
    last: dict[Any, Any] = {}
    for i, (f, k, v) in enumerate(t.mops):
        hv = hashable(v)
        if f == "r" and k in last and last[k] != hv:
            return {"op": op_ref(t), "mop": i, "key": k, "expected": last[k], "read": v,
                    "text": f"internal: op {t.call} read {v!r} from key {k!r}, but its own earlier micro-ops "
                            f"imply {last[k]!r}"}
        last[k] = hv
    return None


@dataclass
class _RegisterExplainer:
    writer_of: Mapping[tuple[Any, Any], int]
    views: Sequence[_TxnView]
    version_edges: Mapping[Any, set[tuple[Any, Any]]]
    witnesses: Mapping[tuple[Any, Any, Any], int]  # (key, a, b) -> the op that read a and wrote b

    def data_reason(self, a: Txn, b: Txn, kind: int, names: dict[int, str]) -> str:
        A, B = names[a.id], names[b.id]
        va, vb = self.views[a.id], self.views[b.id]
        if kind == WR:
            for k, v in vb.external_reads.items():
                if v is not INIT and va.final_writes.get(k) == v:
                    return f"{B} read {A}'s write of {v!r} to key {k!r}"
        for k, v in vb.final_writes.items():
            for prev, nxt in self.version_edges.get(k, ()):
                if nxt != v:
                    continue
                if kind == WW and va.final_writes.get(k) == prev:
                    return f"{B} wrote {v!r} to key {k!r} after {A} wrote {prev!r} ({self._why(k, prev, v)})"
                if kind == RW and k in va.external_reads and va.external_reads[k] == prev:
                    if prev is INIT:
                        return f"{A} read key {k!r} as nil (its initial value), so before {B}'s write of {v!r}"
                    return (f"{A} read {prev!r} from key {k!r}, a version before {B}'s write of {v!r} "
                            f"({self._why(k, prev, v)})")
        return f"{A} and {B} are related by {kind}"  # unreachable for edges this module made

    def _why(self, k: Any, prev: Any, v: Any) -> str:
        if prev is INIT:
            return "every key starts at nil"
        witness = self.witnesses.get((k, prev, v))
        return f"op {witness} read the first and then wrote the second" if witness is not None else "inferred"


@gc_paused()
def check_rw_register(history: History, *, consistency_model: str = DEFAULT_MODEL, realtime: bool | None = None,
                      process: bool | None = None, wfr_keys: bool = True,
                      budget_per_component: int = 1_000_000) -> Result:
    """Check an rw-register history (``f`` "txn", micro-ops ``["r", k, v]`` and ``["w", k, v]``).

    Options as ``check_list_append``; ``wfr_keys`` as described in the module docstring.
    Written values must be unique per key and not null; otherwise the result is "unknown".
    """
    model = canonical_model(consistency_model)
    txns = transactions(history, ("r", "w"))
    dups = _duplicate_writes(txns)
    if dups:
        return Result("unknown", {"consistency_model": model, "duplicate_writes": dups},
                      f"cannot check: the workload must write each non-null value to a key at most once, but "
                      f"{len(dups)} write(s) break that (first: {dups[0]['value']!r} to key {dups[0]['key']!r} "
                      f"by ops {dups[0]['ops']})")
    views = [_view(t) for t in txns]
    writer_of: dict[tuple[Any, Any], int] = {}  # final writes only
    intermediate_writer: dict[tuple[Any, Any], int] = {}
    for t, view in zip(txns, views, strict=True):
        for k, v in view.final_writes.items():
            writer_of[(k, v)] = t.id
        for kv in view.intermediate_writes:
            intermediate_writer[kv] = t.id

    anomalies: dict[str, list[dict[str, Any]]] = {"G1a": [], "G1b": [], "garbage-read": [], "internal": [],
                                                  "cyclic-versions": []}
    observed: set[int] = set()
    for t, view in zip(txns, views, strict=True):
        if t.type != "ok":
            continue
        case = _internal_case(t)
        if case:
            anomalies["internal"].append(case)
        for k, v in view.external_reads.items():
            if v is INIT:
                continue
            w = writer_of.get((k, v))
            if w is None and (k, v) in intermediate_writer:
                w2 = intermediate_writer[(k, v)]
                anomalies["G1b"].append({"op": op_ref(t), "key": k, "value": v, "writer": op_ref(txns[w2]),
                                         "text": f"G1b: op {t.call} read {v!r} from key {k!r}, an intermediate "
                                                 f"write of op {txns[w2].call}, which wrote {k!r} again"})
            elif w is None:
                anomalies["garbage-read"].append({"op": op_ref(t), "key": k, "value": v,
                                                  "text": f"garbage-read: op {t.call} read {v!r} from key {k!r}, "
                                                          "which no op wrote"})
            elif txns[w].type == "fail":
                anomalies["G1a"].append({"op": op_ref(t), "key": k, "value": v, "writer": op_ref(txns[w]),
                                         "text": f"G1a: op {t.call} read {v!r} from key {k!r}, written by op "
                                                 f"{txns[w].call}, which failed"})
            else:
                observed.add(w)
    included = [t.type == "ok" or (t.type == "info" and t.id in observed) for t in txns]

    # Version orders: (a, b) = a directly precedes b on key k.
    version_edges: dict[Any, set[tuple[Any, Any]]] = {}
    witnesses: dict[tuple[Any, Any, Any], int] = {}
    if wfr_keys:
        for t, view in zip(txns, views, strict=True):
            if t.type != "ok":
                continue
            for k, a in view.external_reads.items():
                b = view.final_writes.get(k)
                if b is not None and b != a and (a is INIT or writer_of.get((k, a)) is not None):
                    version_edges.setdefault(k, set()).add((a, b))
                    witnesses.setdefault((k, a, b), t.call)
    for (k, v), w in writer_of.items():
        if included[w]:
            version_edges.setdefault(k, set()).add((INIT, v))  # every key starts at nil
    for k, edges in version_edges.items():
        g = nx.DiGraph((a, b) for a, b in edges if a is not INIT)
        if not nx.is_directed_acyclic_graph(g):
            cycle = [a for a, _ in nx.find_cycle(g)]
            anomalies["cyclic-versions"].append({"key": k, "versions": cycle,
                                                 "text": f"cyclic-versions: key {k!r} has a cyclic version "
                                                         f"order {cycle}"})

    readers: dict[tuple[Any, Any], list[int]] = {}
    for t, view in zip(txns, views, strict=True):
        if t.type == "ok":
            for k, v in view.external_reads.items():
                readers.setdefault((k, v), []).append(t.id)
    graph = DependencyGraph(len(txns))
    for (k, v), rs in readers.items():
        w = writer_of.get((k, v)) if v is not INIT else None
        if w is not None and included[w]:
            for r in rs:
                graph.add(w, r, WR)
    for k, edges in version_edges.items():
        for a, b in edges:
            wb = writer_of.get((k, b))
            if wb is None or not included[wb]:
                continue
            wa = writer_of.get((k, a)) if a is not INIT else None
            if wa is not None and included[wa]:
                graph.add(wa, wb, WW)
            for r in readers.get((k, a), ()):
                graph.add(r, wb, RW)
    members = [t for t in txns if included[t.id]]
    if realtime if realtime is not None else model in NEEDS_REALTIME:
        graph.add_all(realtime_order(members), REALTIME)
    if process if process is not None else model in NEEDS_PROCESS:
        graph.add_all(process_order(members), PROCESS)
    outcome = find_cycles(graph, budget_per_component=budget_per_component)
    stats = {"txns": len(txns), "in_graph": len(members), "edges": len(graph.edges),
             "version_order_edges": sum(len(e) for e in version_edges.values())}
    return assemble(consistency_model=model, anomalies=anomalies, outcome=outcome, txns=txns,
                    explainer=_RegisterExplainer(writer_of, views, version_edges, witnesses), stats=stats)


class RwRegisterChecker:
    """The Checker form: ``opts`` may override ``consistency_model``, ``realtime``, ``process``, ``wfr_keys``."""

    def __init__(self, consistency_model: str = DEFAULT_MODEL, realtime: bool | None = None,
                 process: bool | None = None, wfr_keys: bool = True) -> None:
        self.consistency_model = consistency_model
        self.realtime = realtime
        self.process = process
        self.wfr_keys = wfr_keys

    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        """``opts["directory"]``, when given, receives one DOT file per cycle in its ``elle/`` folder."""
        opts = opts or {}
        result = check_rw_register(
            history,
            consistency_model=opts.get("consistency_model", opts.get("consistency-model", self.consistency_model)),
            realtime=opts.get("realtime", self.realtime), process=opts.get("process", self.process),
            wfr_keys=opts.get("wfr_keys", self.wfr_keys))
        if opts.get("directory") and result.details.get("cycles"):
            write_cycle_dots(result.details["cycles"], os.path.join(opts["directory"], "elle"))
        return result
