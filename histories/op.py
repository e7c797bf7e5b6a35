"""The operation record: one invocation or completion in a history (Jepsen's vocabulary)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: frozenset[str] = frozenset(("invoke", "ok", "fail", "info"))
NEMESIS = "nemesis"

Process = int | str


class Op(NamedTuple):
    """One event of a history (immutable; a named tuple because the recorder makes millions of them).

    ``type``: ``invoke`` starts an operation; ``ok`` = it happened; ``fail`` = it definitely did not
    happen; ``info`` = indeterminate (it may have taken effect at any time after its invocation, or never).
    ``process`` is an int for client processes; anything else (``"nemesis"``) is not a client and is
    ignored by client checkers. ``time`` is ns since the test started (monotonic), or -1 when unknown.
    """

    index: int
    type: OpType
    process: Process
    f: str
    value: Any = None
    key: Any = None
    time: int = -1
    node: str | None = None
    error: Any = None

    @property
    def is_client(self) -> bool:
        return isinstance(self.process, int) and not isinstance(self.process, bool)

    @property
    def is_invoke(self) -> bool:
        return self.type == "invoke"

    def with_(self, **changes: Any) -> Op:
        return self._replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record: fields that are unset (None / time -1) are left out."""
        d: dict[str, Any] = {"index": self.index, "type": self.type, "process": self.process, "f": self.f}
        if self.key is not None:
            d["key"] = self.key
        d["value"] = self.value
        if self.time >= 0:
            d["time"] = self.time
        if self.node is not None:
            d["node"] = self.node
        if self.error is not None:
            d["error"] = self.error
        return d


# The error of a write the fenced resource refused because its token is older than one it accepted:
# the writer is no longer the lock's holder (lock workload; DESIGN.md "Op vocabularies").
FENCED_OFF = "fenced-off"


def fenced_off(message: str) -> dict[str, str]:
    """The ``error`` of a completion refused by fencing (a ``fail``): typed, so no one matches text."""
    return {"type": FENCED_OFF, "message": message}


def is_fenced_off(error: Any) -> bool:
    return isinstance(error, dict) and error.get("type") == FENCED_OFF
