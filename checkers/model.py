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

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

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
class Preparing(Protocol):
    """A model that drops or normalises operations before the search.

    ``prepare`` returns None for an operation that constrains nothing (an indeterminate read), and may
    raise ``ValueError`` with a message for an operation the model does not understand.
    ``read_only`` says an ok operation never changes the state when it is legal (reads, failed CAS):
    the search places such ops without branching, a sound pruning.
    """

    def prepare(self, op: Operation) -> Operation | None: ...

    def read_only(self, op: Operation) -> bool: ...


@runtime_checkable
class Describing(Protocol):
    def describe(self, state: Any) -> str: ...
