"""Transactions as the graph checkers see them: dense ids, validated micro-ops, process and real-time order."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History, Operation, hashable

MicroOp = tuple[str, Any, Any]
_PLAIN = (int, str)  # key types that are hashable as they are (the common case, kept fast)


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction. ``id`` is its position among the history's txns (invocation order).

    ``mops`` are what it did: for an ok txn the completion's micro-ops (reads carry what was read), for a
    failed or indeterminate txn the invocation's (reads carry nothing). ``type`` is ok, fail or info (no
    completion counts as info); ``call``/``ret`` are the history indexes of invocation and completion.
    The operation's fields are copied because the checkers read them in their innermost loops.
    """

    id: int
    operation: Operation
    mops: tuple[MicroOp, ...]
    type: str
    process: Any
    call: int
    ret: int | None


def format_error(history: History, op_index: int, message: str) -> HistoryFormatError:
    """A HistoryFormatError pointing at the file line of the op with this index (found only on error)."""
    for pos, op in enumerate(history):
        if op.index == op_index:
            return HistoryFormatError(history.source, history.line_of(pos), message)
    return HistoryFormatError(history.source, None, f"op {op_index}: {message}")


def _micro_ops(history: History, op_index: int, value: Any, allowed: Collection[str]) -> tuple[MicroOp, ...]:
    if not isinstance(value, (list, tuple)):
        raise format_error(history, op_index, f"expected a txn value (a list of micro-ops), got {value!r}")
    mops = []
    for mop in value:
        if not isinstance(mop, (list, tuple)) or len(mop) != 3 or mop[0] not in allowed:
            expected = " or ".join(f'["{f}", key, value]' for f in sorted(allowed))
            raise format_error(history, op_index, f"expected a micro-op {expected}, got {mop!r}")
        f, k, v = mop
        mops.append((f, k if type(k) in _PLAIN else hashable(k), v))
    return tuple(mops)


def transactions(history: History, allowed: Collection[str]) -> list[Txn]:
    """Every client operation of ``history`` as a Txn; a non-txn op or a malformed micro-op is an error."""
    txns = []
    for operation in history.operations():
        if operation.f != "txn":
            raise format_error(history, operation.call, f"expected f 'txn' (a transaction), got {operation.f!r}")
        source = operation.completion if operation.type == "ok" else operation.invoke
        assert source is not None
        mops = _micro_ops(history, source.index, source.value, allowed)
        txns.append(Txn(len(txns), operation, mops, operation.type, operation.process, operation.call,
                        operation.ret))
    return txns


def process_order(txns: Iterable[Txn]) -> list[tuple[int, int]]:
    """Edges between successive txns of each process (``txns`` in invocation order).

    An indeterminate txn ends its process (the worker continues under a new process id), so it only
    receives an edge.
    """
    last_of: dict[Any, int] = {}
    edges = []
    for t in txns:
        prev = last_of.get(t.process)
        if prev is not None:
            edges.append((prev, t.id))
        last_of[t.process] = t.id
    return edges


def realtime_order(txns: Iterable[Txn]) -> list[tuple[int, int]]:
    """The transitive reduction of real-time order: A -> B when A completed before B was invoked.

    Sweeps the history once, keeping the frontier of completed txns not yet known to precede another
    completed txn; a txn invoked now follows exactly that frontier (and, transitively, all before it).
    Txns without a completion (indeterminate) precede nothing.
    """
    events: list[tuple[int, int, int]] = []  # (history index, 1 = invoke | 0 = completion, txn id)
    for t in txns:
        events.append((t.call, 1, t.id))
        if t.type == "ok" and t.ret is not None:
            events.append((t.ret, 0, t.id))
    events.sort()
    frontier: set[int] = set()
    preds: dict[int, frozenset[int]] = {}
    edges = []
    for _, is_invoke, tid in events:
        if is_invoke:
            before = frozenset(frontier)
            preds[tid] = before
            edges.extend((p, tid) for p in before)
        else:
            frontier -= preds.get(tid, frozenset())
            frontier.add(tid)
    return edges
