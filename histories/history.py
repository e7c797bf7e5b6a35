"""A history: ops in the order they happened, paired into operations, split per process and per key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.op import Op


class Operation(NamedTuple):
    """An invocation paired with its completion (immutable; a named tuple: one is made per operation).

    ``completion`` is None when the process never completed it (it crashed, or the history ends first):
    such an operation is indeterminate, exactly like an ``info`` completion.
    """

    invoke: Op
    completion: Op | None

    @property
    def type(self) -> str:
        """``ok``, ``fail`` or ``info`` (a missing completion counts as ``info``)."""
        return self.completion.type if self.completion is not None else "info"

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def process(self) -> Any:
        return self.invoke.process

    @property
    def key(self) -> Any:
        return self.invoke.key

    @property
    def value(self) -> Any:
        """What the operation did: the completion's value when it is ok, else the invocation's argument."""
        if self.completion is not None and self.completion.type == "ok":
            return self.completion.value
        return self.invoke.value

    @property
    def call(self) -> int:
        """Position of the invocation in the history (its index)."""
        return self.invoke.index

    @property
    def ret(self) -> int | None:
        """Position of the completion, None when it never completed."""
        return self.completion.index if self.completion is not None else None


class History(Sequence[Op]):
    """An immutable sequence of ops, validated on construction.

    Pairing rules (Jepsen's): each client process has at most one open invocation; a completion closes
    the open invocation of its process with the same ``f``. Non-client ops (the nemesis) are kept in the
    sequence but never paired or checked by client checkers.
    """

    __slots__ = ("_ops", "source", "_lines", "_operations")

    def __init__(self, ops: Iterable[Op], source: str | None = None, lines: Sequence[int] | None = None):
        self._ops: tuple[Op, ...] = tuple(ops)
        self.source = source
        self._lines = tuple(lines) if lines is not None else None
        self._operations: tuple[Operation, ...] = self._pair()

    # -- Sequence -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ops)

    def __getitem__(self, i):  # type: ignore[override]
        return self._ops[i]

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def __repr__(self) -> str:
        return f"History({len(self._ops)} ops, source={self.source!r})"

    # -- pairing --------------------------------------------------------------------------------------
    def line_of(self, position: int) -> int | None:
        """The source line of the op at ``position`` (None when the history did not come from a file)."""
        return self._lines[position] if self._lines is not None else None

    def _error(self, position: int, message: str) -> HistoryFormatError:
        return HistoryFormatError(self.source, self.line_of(position), message)

    def _pair(self) -> tuple[Operation, ...]:
        open_: dict[Any, tuple[int, Op, int]] = {}  # process -> (position, invocation, slot in result)
        result: list[Operation | None] = []
        last_index = None
        for pos, op in enumerate(self._ops):
            index, type_, process = op.index, op.type, op.process
            if last_index is not None and index <= last_index:
                raise self._error(pos, f"op index {index} is not greater than the previous {last_index}")
            last_index = index
            if type(process) is not int and not op.is_client:  # the common case first: a plain int
                continue
            if type_ == "invoke":
                if process in open_:
                    prev_pos = open_[process][0]
                    where = self.line_of(prev_pos)
                    at = f"line {where}" if where is not None else f"index {self._ops[prev_pos].index}"
                    raise self._error(
                        pos, f"process {process} invokes {op.f!r} while its invocation at {at} is still open"
                    )
                open_[process] = (pos, op, len(result))
                result.append(None)
            else:
                opened = open_.pop(process, None)
                if opened is None:
                    raise self._error(pos, f"{type_} completion of {op.f!r} by process {process} has no open invocation")
                _, inv, slot = opened
                if inv.f != op.f:
                    raise self._error(pos, f"{type_} completion of {op.f!r} by process {process} does not match its open invocation of {inv.f!r}")
                result[slot] = Operation(inv, op)
        for _, inv, slot in open_.values():
            result[slot] = Operation(inv, None)
        return tuple(r for r in result if r is not None)

    # -- views ----------------------------------------------------------------------------------------
    def operations(self) -> tuple[Operation, ...]:
        """Client operations in invocation order, each paired with its completion (or None)."""
        return self._operations

    def client_ops(self) -> list[Op]:
        return [op for op in self._ops if op.is_client]

    def nemesis_ops(self) -> list[Op]:
        return [op for op in self._ops if not op.is_client]

    def processes(self) -> list[Any]:
        seen: dict[Any, None] = {}
        for op in self._ops:
            if op.is_client:
                seen.setdefault(op.process, None)
        return list(seen)

    def keys(self) -> list[Any]:
        seen: dict[Any, None] = {}
        for o in self._operations:
            seen.setdefault(_hashable(o.key), None)
        return list(seen)

    def by_key(self) -> dict[Any, History]:
        """Split client ops per key (the invocation's ``key``); the nemesis is dropped.

        Completions that do not repeat the key follow their invocation.
        """
        key_of_process: dict[Any, Any] = {}
        groups: dict[Any, list[int]] = {}
        for pos, op in enumerate(self._ops):
            if not op.is_client:
                continue
            if op.type == "invoke":
                k = _hashable(op.key)
                key_of_process[op.process] = k
            else:
                k = key_of_process.pop(op.process)
            groups.setdefault(k, []).append(pos)
        operations: dict[Any, list[Operation]] = {k: [] for k in groups}
        for o in self._operations:
            operations[_hashable(o.invoke.key)].append(o)
        out: dict[Any, History] = {}
        for k, positions in groups.items():
            lines = [self._lines[p] for p in positions] if self._lines is not None else None
            out[k] = History._validated([self._ops[p] for p in positions], self.source, lines, operations[k])
        return out

    @classmethod
    def _validated(cls, ops: list[Op], source: str | None, lines: list[int] | None,
                   operations: list[Operation]) -> History:
        """A part of a history already validated: its pairing is the parent's, not computed again."""
        h = cls.__new__(cls)
        h._ops = tuple(ops)
        h.source = source
        h._lines = tuple(lines) if lines is not None else None
        h._operations = tuple(operations)
        return h


_SCALAR_TYPES = frozenset((int, str, float, bool, type(None)))


def _hashable(v: Any) -> Any:
    """JSON values made hashable (lists become tuples, dicts sorted item tuples)."""
    if type(v) in _SCALAR_TYPES:  # the common case, first: checkers call this in their inner loops
        return v
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


hashable = _hashable


def lift_independent(history: History) -> History:
    """Jepsen's independent ops carry ``[key, value]`` tuples as their value: move the key into ``key``.

    Applied on request only (a ``[a, b]`` value is also a plain CAS argument).
    """
    ops = []
    key_of_process: dict[Any, Any] = {}
    for pos, op in enumerate(history):
        if not op.is_client:
            ops.append(op)
            continue
        v = op.value
        if isinstance(v, (list, tuple)) and len(v) == 2:
            key_of_process[op.process] = v[0]
            ops.append(op.with_(key=v[0], value=v[1]))
        elif op.type == "invoke":
            raise HistoryFormatError(history.source, history.line_of(pos), f"expected an independent [key value] tuple as the value, got {v!r}")
        else:
            # a completion without a tuple (e.g. an info with :timed-out) keeps the invocation's key
            ops.append(op.with_(key=key_of_process.get(op.process)))
    return History(ops, history.source, history._lines)
