"""Elle's list-append checker: txns append unique values to lists and read whole lists.

Every read of a list reveals the order of the appends before it, so the longest read of a key gives its
version order (every other read must be a prefix of it, else "incompatible-order"). From that order:

- wr: T2 read a list whose last element T1 appended;
- ww: T2 appended the element right after one T1 appended;
- rw: T1 read the state right before T2's append (T1 did not observe it).

An append that no read ever shows still happened after every observed element of its key (the lists only
grow), so it gets ww/rw edges from the last observed element, as in Elle.

Which txns are in the graph: committed (ok) ones, and indeterminate (info) ones whose appends someone
observed, which proves they committed. Failed txns did not happen; reading their appends is G1a.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from splitbrain.checkers.elle.txn import Txn, format_error, process_order, realtime_order, transactions
from splitbrain.checkers.result import Result
from splitbrain.histories.history import History, hashable

INIT: Any = ("<the initial, empty state>",)  # the "element" a read of an empty list ends with

DEFAULT_MODEL = "strict-serializable"  # Elle's default


@dataclass
class _Reads:
    """What committed txns read: (txn, key, list) per read, and the distinct lists per key."""

    all: list[tuple[int, Any, tuple[Any, ...]]] = field(default_factory=list)
    # an insertion-ordered set per key, so that ties (and so reports) do not depend on hashing
    distinct: dict[Any, dict[tuple[Any, ...], None]] = field(default_factory=dict)


def _read_value(history: History, t: Txn, k: Any, v: Any) -> tuple[Any, ...]:
    if v is None:
        return ()
    if not isinstance(v, (list, tuple)):
        raise format_error(history, t.ret if t.ret is not None else t.call,
                           f"expected the read of list key {k!r} to be a list, got {v!r}")
    lst = tuple(v)
    try:
        hash(lst)
    except TypeError:
        lst = tuple(hashable(list(v)))
    return lst


def _element(v: Any) -> Any:
    return v if type(v) in (int, str) else hashable(v)


def _collect(history: History, txns: Sequence[Txn]) -> tuple[dict[tuple[Any, Any], int], _Reads,
                                                              list[dict[str, Any]]]:
    """The writer of every (key, element) appended by any txn, every committed read, and the appends
    of one value to one key by two txns (the workload promises that never happens)."""
    writer_of: dict[tuple[Any, Any], int] = {}
    reads = _Reads()
    dups = []
    for t in txns:
        ok = t.type == "ok"
        for f, k, v in t.mops:
            if f == "append":
                key = (k, _element(v))
                first = writer_of.setdefault(key, t.id)
                if first != t.id:
                    dups.append({"key": k, "value": key[1], "ops": [txns[first].call, t.call]})
            elif ok:
                lst = _read_value(history, t, k, v)
                reads.all.append((t.id, k, lst))
                if lst:
                    reads.distinct.setdefault(k, {})[lst] = None
    return writer_of, reads, dups


def _version_orders(reads: _Reads) -> tuple[dict[Any, tuple[Any, ...]], list[dict[str, Any]]]:
    """The longest read per key, and the reads that are not a prefix of it."""
    orders: dict[Any, tuple[Any, ...]] = {}
    incompatible = []
    for k, lists in reads.distinct.items():
        longest = max(lists, key=len)  # the first of the longest, in history order
        orders[k] = longest
        for lst in lists:
            if longest[: len(lst)] != lst:
                incompatible.append({"key": k, "values": [list(lst), list(longest)],
                                     "text": f"incompatible-order: key {k!r} was read as {list(lst)} and as "
                                             f"{list(longest)}; neither is a prefix of the other"})
    return orders, incompatible


def _out_of_txn_order(txns: Sequence[Txn], orders: Mapping[Any, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Appends one txn made to a key in a given order, shown by reads in another order (or a later one
    without an earlier one): no execution of that txn could leave such a list."""
    out = []
    for t in txns:
        if t.type == "fail":
            continue  # its appends must not show at all: G1a says so
        appended: dict[Any, list[Any]] = {}
        for f, k, v in t.mops:
            if f == "append" and k in orders:
                appended.setdefault(k, []).append(v if type(v) is int else _element(v))
        for k, values in appended.items():
            if len(values) < 2:
                continue
            where = {e: i for i, e in enumerate(orders[k])}
            positions = [where.get(v) for v in values]
            for j in range(1, len(values)):
                if positions[j] is None:
                    continue
                earlier = [values[i] for i in range(j) if positions[i] is None or positions[i] > positions[j]]
                if earlier:
                    out.append({"key": k, "values": [values, list(orders[k])], "op": t.call,
                                "text": f"incompatible-order: op {t.call} appended {values} to key {k!r} in that "
                                        f"order, but a read shows {list(orders[k])}: {values[j]!r} without "
                                        f"{earlier[0]!r} before it"})
                    break
    return out


def _internal_cases(t: Txn) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(internal, future-read) for one committed txn: reads that disagree with its own earlier
    appends/reads, and reads of an element it appends only later."""
    keys = [k for _, k, _ in t.mops]
    if len(set(keys)) == len(keys):
        return None, None  # no key touched twice: nothing to compare
    internal = future = None
    state: dict[Any, tuple[bool, list[Any]]] = {}  # key -> (whole list known?, list or known suffix)
    read_elements: dict[Any, set[Any]] = {}
    for i, (f, k, v) in enumerate(t.mops):
        if f == "append":
            v = _element(v)
            known, vals = state.get(k, (False, []))
            state[k] = (known, [*vals, v])
            if future is None and v in read_elements.get(k, ()):
                future = {"op": op_ref(t), "mop": i, "key": k, "element": v,
                          "text": f"future-read: op {t.call} read element {v!r} of key {k!r} before "
                                  f"appending it itself"}
            continue
        lst = [_element(x) for x in v] if v is not None else []
        read_elements.setdefault(k, set()).update(lst)
        if k in state and internal is None:
            known, vals = state[k]
            agrees = lst == vals if known else (len(lst) >= len(vals) and lst[len(lst) - len(vals):] == vals)
            if not agrees:
                expected = vals if known else ["...", *vals]
                internal = {"op": op_ref(t), "mop": i, "key": k, "expected": expected, "read": lst,
                            "text": f"internal: op {t.call} read {lst} from key {k!r}, but its own earlier "
                                    f"micro-ops imply {expected}"}
        state[k] = (True, lst)
    return internal, future


@dataclass
class _ListAppendExplainer:
    """Explains ww/wr/rw edges by finding the micro-ops that produced them, by position in the version
    order (an append no read shows sits after every observed element)."""

    writer_of: Mapping[tuple[Any, Any], int]
    orders: Mapping[Any, tuple[Any, ...]]
    _positions: dict[Any, dict[Any, int]] = field(default_factory=dict)

    def position(self, k: Any, e: Any) -> int:
        """Where element e of key k is in the version order: -1 for the empty state, len(order) when
        it was never observed."""
        if e is INIT:
            return -1
        order = self.orders.get(k, ())
        if k not in self._positions:
            self._positions[k] = {x: i for i, x in reversed(list(enumerate(order)))}
        return self._positions[k].get(e, len(order))

    def data_reason(self, a: Txn, b: Txn, kind: int, names: dict[int, str]) -> str:
        A, B = names[a.id], names[b.id]
        if kind == WR:
            for f, k, v in b.mops:
                if f == "r" and v and self.writer_of.get((k, _element(v[-1]))) == a.id:
                    return f"{B} read {A}'s append of {v[-1]!r} to key {k!r}"
        for f, k, v in b.mops:
            if f != "append":
                continue
            q = self.position(k, _element(v))
            for fa, ka, va in a.mops:
                if ka != k:
                    continue
                if kind == WW and fa == "append" and self.position(k, _element(va)) < q:
                    return f"{B} appended {v!r} after {A} appended {va!r} to key {k!r}"
                if kind == RW and fa == "r" and self.position(k, _element(va[-1]) if va else INIT) < q:
                    if not va:
                        return f"{A} read key {k!r} empty, before {B} appended {v!r} to it"
                    return f"{A} did not observe {B}'s append of {v!r} to key {k!r} (it read up to {va[-1]!r})"
        return f"{A} and {B} are related by {kind}"  # unreachable for edges this module made


def _graph(txns: Sequence[Txn], writer_of: Mapping[tuple[Any, Any], int], reads: _Reads,
           orders: Mapping[Any, tuple[Any, ...]], included: list[bool]) -> DependencyGraph:
    graph = DependencyGraph(len(txns))
    edges, n = graph.edges, graph.n

    def add(a: int, b: int, kind: int) -> None:
        if a != b:
            key = a * n + b
            edges[key] = edges.get(key, 0) | kind

    readers: dict[tuple[Any, Any], list[int]] = {}
    for tid, k, lst in reads.all:
        last = lst[-1] if lst else INIT
        readers.setdefault((k, last), []).append(tid)
        if lst:
            w = writer_of.get((k, last))
            if w is not None and w != tid and included[w]:
                key = w * n + tid
                edges[key] = edges.get(key, 0) | WR
    # Per key, walk the version order. An element whose writer is not in the graph (failed, or garbage)
    # is skipped over: the last writer in the graph before it still precedes the next one (ww), and
    # whoever read a state before the next writer's append still missed it (rw).
    observed: dict[Any, set[Any]] = {}
    tails: dict[Any, tuple[int | None, list[int]]] = {}  # key -> (last writer in graph, readers since)
    for k, order in orders.items():
        seen = observed[k] = set()
        last_writer: int | None = None
        pending: list[int] = list(readers.get((k, INIT), ()))
        for e in order:
            if e in seen:
                continue  # a duplicate element: reported; its first position is its version
            seen.add(e)
            w = writer_of.get((k, e))
            if w is not None and included[w]:
                if last_writer is not None and last_writer != w:
                    key = last_writer * n + w
                    edges[key] = edges.get(key, 0) | WW
                for r in pending:
                    if r != w:
                        key = r * n + w
                        edges[key] = edges.get(key, 0) | RW
                last_writer, pending = w, []
            pending.extend(readers.get((k, e), ()))
        tails[k] = (last_writer, pending)
    # An append no read shows came after every observed element of its key.
    no_elements: set[Any] = set()
    for t in txns:
        if not included[t.id]:
            continue
        for f, k, v in t.mops:
            if f != "append" or (v if type(v) is int else _element(v)) in observed.get(k, no_elements):
                continue
            last_writer, pending = tails.get(k, (None, readers.get((k, INIT), [])))
            if last_writer is not None:
                add(last_writer, t.id, WW)
            for r in pending:
                add(r, t.id, RW)
    return graph


def _read_anomalies(txns: Sequence[Txn], writer_of: Mapping[tuple[Any, Any], int], reads: _Reads,
                    ) -> dict[str, list[dict[str, Any]]]:
    """G1a (read a failed txn's append), garbage-read (an element nobody appended), G1b (a read ending
    in an append its txn later followed with another to the same key), duplicate-elements."""
    intermediate: set[tuple[Any, Any]] = set()
    for t in txns:
        last_append: dict[Any, Any] = {}
        for f, k, v in t.mops:
            if f == "append":
                if k in last_append:
                    intermediate.add((k, last_append[k]))
                last_append[k] = hashable(v)
    out: dict[str, list[dict[str, Any]]] = {"G1a": [], "garbage-read": [], "G1b": [], "duplicate-elements": []}
    # Each distinct element of each key is checked once; the reader is looked up only for bad ones.
    bad: dict[tuple[Any, Any], str] = {}
    for k, lists in reads.distinct.items():
        elements: set[Any] = set()
        for lst in lists:
            elements.update(lst)
            if len(set(lst)) != len(lst):
                bad[(k, lst)] = "duplicate-elements"
        for e in elements:
            w = writer_of.get((k, e))
            if w is None:
                bad[(k, e)] = "garbage-read"
            elif txns[w].type == "fail":
                bad[(k, e)] = "G1a"
    bad_keys = {k for k, _ in bad}
    reported: set[tuple[str, Any, Any]] = set()
    for tid, k, lst in reads.all:
        t = txns[tid]
        if lst:
            last = lst[-1]
            w = writer_of.get((k, last))
            if (k, last) in intermediate and w is not None and w != tid:
                out["G1b"].append({"op": op_ref(t), "key": k, "element": last, "writer": op_ref(txns[w]),
                                   "text": f"G1b: op {t.call} read key {k!r} ending in {last!r}, an intermediate "
                                           f"state: op {txns[w].call} appended to {k!r} again afterwards"})
        if k not in bad_keys:
            continue
        if bad.get((k, lst)) == "duplicate-elements" and ("dup", k, lst) not in reported:
            reported.add(("dup", k, lst))
            counts: dict[Any, int] = {}
            for e in lst:
                counts[e] = counts.get(e, 0) + 1
            dups = {repr(e): n for e, n in counts.items() if n > 1}
            out["duplicate-elements"].append({"op": op_ref(t), "key": k, "duplicates": dups,
                                              "text": f"duplicate-elements: op {t.call} read key {k!r} with "
                                                      f"repeated elements {dups}"})
        for e in lst:
            kind = bad.get((k, e))
            if kind in ("G1a", "garbage-read") and (kind, k, e) not in reported:
                reported.add((kind, k, e))
                case: dict[str, Any] = {"op": op_ref(t), "key": k, "element": e}
                if kind == "G1a":
                    w = writer_of[(k, e)]
                    case["writer"] = op_ref(txns[w])
                    case["text"] = (f"G1a: op {t.call} read element {e!r} of key {k!r}, appended by op "
                                    f"{txns[w].call}, which failed")
                else:
                    case["text"] = f"garbage-read: op {t.call} read element {e!r} of key {k!r}, which no op appended"
                out[kind].append(case)
    return out


@gc_paused()
def check_list_append(history: History, *, consistency_model: str = DEFAULT_MODEL, realtime: bool | None = None,
                      process: bool | None = None, budget_per_component: int = 1_000_000) -> Result:
    """Check a list-append history (``f`` "txn", micro-ops ``["append", k, v]`` and ``["r", k, list]``).

    ``consistency_model``: the model the history must satisfy (default strict-serializable, as Elle).
    ``realtime`` / ``process``: add real-time / process-order edges; None (default) adds them exactly
    when the model needs them (real-time for strict-serializable and strong-snapshot-isolation, process
    order for the strong-session models).
    Raises HistoryFormatError for a malformed history, ValueError for an unknown model.
    """
    model = canonical_model(consistency_model)
    txns = transactions(history, ("append", "r"))
    writer_of, reads, dups = _collect(history, txns)
    if dups:
        return Result("unknown", {"consistency_model": model, "duplicate_appends": dups},
                      f"cannot check: the workload must append each value to a key at most once, but "
                      f"{len(dups)} value(s) were appended twice (first: {dups[0]['value']!r} to key "
                      f"{dups[0]['key']!r} by ops {dups[0]['ops']})")
    orders, incompatible = _version_orders(reads)
    incompatible += _out_of_txn_order(txns, orders)
    anomalies = _read_anomalies(txns, writer_of, reads)
    anomalies["incompatible-order"] = incompatible
    anomalies["internal"], anomalies["future-read"] = [], []
    for t in txns:
        if t.type == "ok":
            internal, future = _internal_cases(t)
            if internal:
                anomalies["internal"].append(internal)
            if future:
                anomalies["future-read"].append(future)
    observed_elements = {(k, e) for k, order in orders.items() for e in order}
    included = [t.type == "ok" or (t.type == "info" and any(
        f == "append" and (k, hashable(v)) in observed_elements for f, k, v in t.mops)) for t in txns]
    graph = _graph(txns, writer_of, reads, orders, included)
    members = [t for t in txns if included[t.id]]
    if realtime if realtime is not None else model in NEEDS_REALTIME:
        graph.add_all(realtime_order(members), REALTIME)
    if process if process is not None else model in NEEDS_PROCESS:
        graph.add_all(process_order(members), PROCESS)
    outcome = find_cycles(graph, budget_per_component=budget_per_component)
    stats = {"txns": len(txns), "in_graph": len(members), "edges": len(graph.edges),
             "keys": len(orders)}
    return assemble(consistency_model=model, anomalies=anomalies, outcome=outcome, txns=txns,
                    explainer=_ListAppendExplainer(writer_of, orders), stats=stats)


class ListAppendChecker:
    """The Checker form: ``opts`` may override ``consistency_model``, ``realtime``, ``process``."""

    def __init__(self, consistency_model: str = DEFAULT_MODEL, realtime: bool | None = None,
                 process: bool | None = None) -> None:
        self.consistency_model = consistency_model
        self.realtime = realtime
        self.process = process

    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result:
        """``opts["directory"]``, when given, receives one DOT file per cycle in its ``elle/`` folder."""
        opts = opts or {}
        result = check_list_append(
            history,
            consistency_model=opts.get("consistency_model", opts.get("consistency-model", self.consistency_model)),
            realtime=opts.get("realtime", self.realtime), process=opts.get("process", self.process))
        if opts.get("directory") and result.details.get("cycles"):
            write_cycle_dots(result.details["cycles"], os.path.join(opts["directory"], "elle"))
        return result
