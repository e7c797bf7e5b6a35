"""The Model protocol of the linearizability checker.

A model is a pure sequential specification. ``step(state, op)`` says whether ``op`` (a paired
invocation/completion, ``histories.history.Operation``) is legal in ``state`` and what state follows.
States must be hashable; ``step`` must be deterministic and side-effect free (the checker caches it).

Indeterminate ops (``op.type == "info"``: completion missing or ``info``) have no known result: ``step``
must apply the op's effect when it could have happened in ``state`` and return ``(True, new_state)``,
or return ``(False, state)`` when it could not have happened there (e.g. a CAS whose old value does not
match). The checker may also never apply an indeterminate op at all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from splitbrain.histories.history import History, Operation


@runtime_checkable
class Model(Protocol):
    name: str

    def init(self) -> Hashable: ...

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]: ...


@runtime_checkable
class Partitionable(Protocol):
    """A model whose history splits into independent sub-histories (P-compositionality, e.g. per key)."""

    def partition(self, history: History) -> list[History]: ...


@runtime_checkable
class HasSubmodel(Protocol):
    """A partitionable model whose parts need their own model (e.g. a per-key initial value)."""

    def submodel(self, sub: History) -> Model: ...


@runtime_checkable
class Splitting(Protocol):
    """partition + submodel in one, without building sub-histories: (operations, model) per part.

    The checker prefers it when a model has it (a history of many keys splits in one pass)."""

    def split(self, history: History) -> list[tuple[Sequence[Operation], Model]]: ...


@runtime_checkable
class Preparing(Protocol):
    """A model that drops or normalises operations before the search.

    ``prepare`` returns None for an operation that constrains nothing (an indeterminate read), and may
    raise ``ValueError`` with a message for an operation the model does not understand.
    ``read_only`` says an ok operation never changes the state when it is legal (reads, failed CAS):
    the search places such ops without branching, a sound pruning.
    """

    def prepare(self, op: Operation) -> Operation | None: ...

    def read_only(self, op: Operation) -> bool: ...


# Op kinds the compiled search (checkers/_wgl.c) steps itself, with integer ids for values and states
# (state ids and value ids share one table, so "legal iff the state is v" is one comparison):
#   READ v          legal iff state == v; state unchanged (a read-only op: pruning 3 places it at once)
#   WRITE v         always legal; state v
#   CAS old new     legal iff state == old; state new
#   ACQUIRE o free  legal iff state == free; state o
#   RELEASE o free  legal iff state != free and (o == -1 or state == o); state free
#   APPEND v        always legal; state + v, for strings (the checker steps it in Python, as a CALLBACK
#                   op with identity class v, when a state could be anything but a string)
# CALLBACK: anything else; the model's step decides (once per state and op: the answer is remembered).
# A CALLBACK op's a1 is its identity class: ops with equal classes (and the same outcome, ok or not) must
# be interchangeable (pruning 2 orders them); -1 lets the checker compute one. Its a2 holds flags:
# READ_ONLY (never changes the state), OVERWRITES (the state after it does not depend on the state
# before, as for WRITE, CAS, ACQUIRE and RELEASE); with a1 -1 the checker asks read_only and overwrites.
CALLBACK, READ, WRITE, CAS, ACQUIRE, RELEASE, APPEND = range(7)
READ_ONLY, OVERWRITES = 1, 2


class CompiledOps(NamedTuple):
    """A partition as the compiled search takes it: the prepared ops, and per op its kind and arguments."""

    ops: list[Operation]
    kind: list[int]
    a1: list[int]
    a2: list[int]


@runtime_checkable
class Compiling(Protocol):
    """A model whose ops the compiled search can step without calling back into Python.

    ``compile(operations, intern)`` does what ``prepare`` does (failed ops are dropped before, as for
    ``prepare``) and says each remaining op's kind and arguments, with values made ids by ``intern`` (the
    state ``init()`` returned is id 0). It must agree with ``step``.
    """

    def compile(self, operations: Sequence[Operation], intern: Callable[[Any], int]) -> CompiledOps: ...


@runtime_checkable
class Describing(Protocol):
    def describe(self, state: Any) -> str: ...
