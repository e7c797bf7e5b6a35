"""Sequential specifications for the linearizability checker (see checkers/model.py for the protocol).

Every state is hashable: JSON values are made hashable with ``histories.history.hashable`` (lists become
tuples, dicts sorted item tuples). Values are compared after the same conversion.

Failed operations (``type == "fail"``) definitely did not happen; the checker drops them before any model
sees them. Indeterminate operations (``info``) are stepped with their invocation's arguments only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from splitbrain.checkers.model import ACQUIRE, APPEND, CAS, READ, RELEASE, WRITE, CompiledOps
from splitbrain.histories.history import History, Operation, hashable

_SCALARS = frozenset((int, str, float, bool, type(None)))

# f names accepted per register-like operation (Jepsen's and Porcupine's spellings).
_READ = frozenset(("read", "get", "r"))
_WRITE = frozenset(("write", "put", "w"))
_CAS = frozenset(("cas", "compare-and-set"))
_APPEND = frozenset(("append",))


class ModelError(ValueError):
    """An op the model cannot read: names the op's index, which the CLI turns into the file's line."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        self.message = message
        super().__init__(f"{message} (op index {index})")


def _unknown_f(model: str, op: Operation, allowed: str) -> ValueError:
    return ModelError(op.call, f"the {model} model does not know f={op.f!r}; expected {allowed}")


def _cas_args(op: Operation) -> tuple[Any, Any]:
    v = op.invoke.value
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ModelError(op.call, f"cas expects [old, new] as its value, got {v!r}")
    return hashable(v[0]), hashable(v[1])


def _appended(state: Any, v: Any) -> Any:
    """Append to a string (Porcupine's kv) or to a list-valued register (state kept as a tuple)."""
    if isinstance(state, str) and isinstance(v, str):
        return state + v
    if state is None:
        return v if isinstance(v, str) else (v,)
    if isinstance(state, tuple):
        return state + (v,)
    raise ValueError(f"cannot append {v!r} to the register value {state!r}")


class Register:
    """A single read/write register, optionally with compare-and-set (``cas-register``).

    read: ok value is the register's value; write v; cas [old, new]: ok = it swapped.

    Reads that returned null: with the initial value null they mean "never written" and must match.
    With a non-null initial value a null read can only be a read that saw nothing (Knossos's convention:
    its cas-register accepts a nil read in any state), so it constrains nothing. ``nil_reads`` overrides:
    "value" (always compare) or "unknown" (never).
    """

    def __init__(self, initial: Any = None, *, cas: bool = True, append: bool = False, name: str | None = None,
                 nil_reads: str | None = None):
        self.initial = hashable(initial)
        if nil_reads not in (None, "value", "unknown"):
            raise ValueError(f"nil_reads must be 'value' or 'unknown', got {nil_reads!r}")
        self.nil_reads_unknown = (nil_reads or ("value" if initial is None else "unknown")) == "unknown"
        self.cas = cas
        self.append = append
        self.name = name or ("cas-register" if cas else "register")
        allowed = set(_READ | _WRITE)
        if cas:
            allowed |= _CAS
        if append:
            allowed |= _APPEND
        self._allowed = frozenset(allowed)
        kinds = {f: READ for f in _READ} | {f: WRITE for f in _WRITE}
        kinds |= {f: CAS for f in _CAS} if cas else {}
        kinds |= {f: APPEND for f in _APPEND} if append else {}
        self._kinds = kinds

    def native_kinds(self) -> tuple[dict[str, int], bool] | None:
        """What the compiled search needs to do ``compile`` itself (checkers/_wgl.c register_ops): the op
        kind of each f this model knows, and whether a nil read constrains nothing. None for a subclass
        with rules of its own (its ``compile`` decides)."""
        cls = type(self)
        if (cls.compile, cls.prepare, cls.step) != (Register.compile, Register.prepare, Register.step):
            return None
        return self._kinds, self.nil_reads_unknown

    def init(self) -> Any:
        return self.initial

    def prepare(self, op: Operation) -> Operation | None:
        if op.f not in self._allowed:
            raise _unknown_f(self.name, op, ", ".join(sorted(self._allowed)))
        if op.f in _CAS:
            _cas_args(op)
        if op.f in _READ:
            if op.type != "ok":
                return None  # an indeterminate read constrains nothing
            if self.nil_reads_unknown and op.completion.value is None:  # type: ignore[union-attr]
                return None
        return op

    def read_only(self, op: Operation) -> bool:
        return op.f in _READ

    def overwrites(self, op: Operation) -> bool:
        """The state after the op does not depend on the state before it (whenever the op is legal)."""
        return op.f in _WRITE or op.f in _CAS

    def compile(self, operations: Sequence[Operation], intern: Callable[[Any], int]) -> CompiledOps:
        """prepare and the op kinds in one pass (on small histories this loop is most of the check)."""
        ops: list[Operation] = []
        kinds: list[int] = []
        a1: list[int] = []
        a2: list[int] = []
        allowed = self._allowed
        nil_reads_unknown = self.nil_reads_unknown
        scalars = _SCALARS
        for op in operations:
            completion = op.completion
            invoke = op.invoke
            f = invoke.f
            if f not in allowed:
                raise _unknown_f(self.name, op, ", ".join(sorted(allowed)))
            if f in _READ:
                if completion is None or completion.type != "ok":
                    continue  # an indeterminate read constrains nothing
                v = completion.value
                if v is None and nil_reads_unknown:
                    continue
                kinds.append(READ)
                a1.append(intern(v if type(v) in scalars else hashable(v)))
                a2.append(0)
            elif f in _WRITE:
                v = invoke.value
                kinds.append(WRITE)
                a1.append(intern(v if type(v) in scalars else hashable(v)))
                a2.append(0)
            elif f in _CAS:
                old, new = _cas_args(op)
                kinds.append(CAS)
                a1.append(intern(old))
                a2.append(intern(new))
            else:  # append
                v = invoke.value
                kinds.append(APPEND)
                a1.append(intern(v if type(v) in scalars else hashable(v)))
                a2.append(0)
            ops.append(op)
        return CompiledOps(ops, kinds, a1, a2)

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        invoke = op.invoke
        f = invoke.f
        if f in _READ:
            return hashable(op.completion.value) == state, state  # type: ignore[union-attr]
        if f in _WRITE:
            return True, hashable(invoke.value)
        if f in _CAS:
            old, new = _cas_args(op)
            return (True, new) if state == old else (False, state)
        if f in _APPEND:
            return True, _appended(state, hashable(op.invoke.value))
        raise _unknown_f(self.name, op, ", ".join(sorted(self._allowed)))

    def describe(self, state: Any) -> str:
        return repr(state)


class KeyValue(Register):
    """Independent registers per key (P-compositional: checked key by key).

    Ops carry ``key``; f read|get, write|put, cas, append. ``initial`` is every key's initial value, or a
    dict key -> initial value (keys not named start at null).
    """

    def __init__(self, initial: Any = None, *, nil_reads: str | None = None):
        self.per_key = initial if isinstance(initial, dict) else None
        super().__init__(None if self.per_key is not None else initial, cas=True, append=True, name="kv",
                         nil_reads=nil_reads or "value")
        self._key: Any = None

    def partition(self, history: History) -> list[History]:
        return list(history.by_key().values())

    def submodel(self, sub: History) -> KeyValue:
        """The model of one key's sub-history (with that key's initial value)."""
        ops = sub.operations()
        return self._of_key(ops[0].key if ops else None)

    def split(self, history: History) -> list[tuple[list[Operation], KeyValue]]:
        """The operations per key, each with its key's model (partition + submodel, without sub-histories)."""
        groups: dict[Any, list[Operation]] = {}
        scalars = _SCALARS
        for op in history.operations():
            k = op.invoke.key
            if type(k) not in scalars:
                k = hashable(k)
            group = groups.get(k)
            if group is None:
                group = groups[k] = []
            group.append(op)
        return [(ops, self._of_key(ops[0].invoke.key)) for ops in groups.values()]

    def _of_key(self, key: Any) -> KeyValue:
        m = object.__new__(KeyValue)  # the same rules (a copy); only the key, so its initial value, differs
        m.__dict__.update(self.__dict__)
        m._key = key
        return m

    def init(self) -> Any:
        if self.per_key is not None:
            return hashable(self.per_key.get(self._key))
        return self.initial


class MultiRegister:
    """Several registers updated by transactions of micro-ops ``[f, key, value]`` (f read|r, write|w).

    State: a sorted tuple of (key, value) pairs. Knossos's multi-register.
    """

    name = "multi-register"

    def __init__(self, initial: Any = None):
        if initial is None:
            initial = {}
        if not isinstance(initial, dict):
            raise ValueError(f"the multi-register model needs a map of initial values, got {initial!r}")
        self.initial = tuple(sorted((k, hashable(v)) for k, v in initial.items()))

    def init(self) -> Any:
        return self.initial

    @staticmethod
    def _micro_ops(op: Operation, value: Any) -> list[tuple[str, Any, Any]]:
        if not isinstance(value, (list, tuple)):
            raise ModelError(op.call, f"a txn's value must be a list of [f, key, value] micro-ops, got {value!r}")
        out = []
        for m in value:
            if not isinstance(m, (list, tuple)) or len(m) != 3 or m[0] not in _READ | _WRITE:
                raise ModelError(op.call, f"bad micro-op {m!r} in txn; expected [read|write, key, value]")
            out.append((m[0], m[1], hashable(m[2])))
        return out

    def prepare(self, op: Operation) -> Operation | None:
        if op.f != "txn":
            raise ModelError(op.call, f"the multi-register model only knows f='txn', got {op.f!r}")
        micro = self._micro_ops(op, op.invoke.value)
        if op.type != "ok" and all(f in _READ for f, _, _ in micro):
            return None
        if op.type == "ok":
            self._micro_ops(op, op.completion.value)  # type: ignore[union-attr]
        return op

    def read_only(self, op: Operation) -> bool:
        return all(f in _READ for f, _, _ in self._micro_ops(op, op.invoke.value))

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        regs = dict(state)
        known = op.type == "ok"
        micro = self._micro_ops(op, op.completion.value if known else op.invoke.value)  # type: ignore[union-attr]
        for f, k, v in micro:
            if f in _READ:
                if known and regs.get(k) != v:
                    return False, state
            else:
                regs[k] = v
        return True, tuple(sorted(regs.items()))

    def describe(self, state: Any) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in state) + "}"


class Mutex:
    """A lock: acquire succeeds only when free; release only by the holder.

    With the lock vocabulary (value ``{"lock": name, "owner": id, ...}``) the holder is the owner and each
    lock name is checked on its own; with plain values (Knossos's mutex) any process may release.
    """

    name = "mutex"

    def init(self) -> Any:
        return None

    @staticmethod
    def _owner(op: Operation) -> Any:
        v = op.invoke.value
        if isinstance(v, dict):
            return hashable(v.get("owner", True))
        return True

    def partition(self, history: History) -> list[History]:
        def lock_of(op):
            return op.value.get("lock") if isinstance(op.value, dict) else None

        keyed = [op.with_(key=lock_of(op)) if op.is_client and op.type == "invoke" else op for op in history]
        return list(History(keyed, history.source).by_key().values())

    def prepare(self, op: Operation) -> Operation | None:
        if op.f not in ("acquire", "release"):
            raise ModelError(op.call, f"the mutex model knows acquire and release, got {op.f!r}")
        return op

    def read_only(self, op: Operation) -> bool:
        return False

    def overwrites(self, op: Operation) -> bool:
        return True  # acquire leaves the owner, release leaves it free: never what it found

    def compile(self, operations: Sequence[Operation], intern: Callable[[Any], int]) -> CompiledOps:
        ops = [self.prepare(op) for op in operations]  # type: ignore[misc]
        free = intern(None)
        kinds, a1 = [], []
        for op in ops:
            owner = self._owner(op)
            if op.f == "acquire":
                kinds.append(ACQUIRE)
                a1.append(intern(owner))
            else:
                kinds.append(RELEASE)
                a1.append(-1 if owner is True else intern(owner))
        return CompiledOps(ops, kinds, a1, [free] * len(ops))

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        owner = self._owner(op)
        if op.f == "acquire":
            return (True, owner) if state is None else (False, state)
        if state is not None and (owner is True or state == owner):
            return True, None
        return False, state

    def describe(self, state: Any) -> str:
        return "free" if state is None else f"held by {state!r}"


class SetModel:
    """A grow-only set: add v; read (ok value: every element)."""

    name = "set"

    def __init__(self, initial: Any = None):
        self.initial = frozenset(hashable(x) for x in (initial or ()))

    def init(self) -> Any:
        return self.initial

    def prepare(self, op: Operation) -> Operation | None:
        if op.f not in ("add", "read"):
            raise ModelError(op.call, f"the set model knows add and read, got {op.f!r}")
        if op.f == "read" and op.type != "ok":
            return None
        return op

    def read_only(self, op: Operation) -> bool:
        return op.f == "read"

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        if op.f == "add":
            return True, state | {hashable(op.invoke.value)}
        seen = op.completion.value  # type: ignore[union-attr]
        if not isinstance(seen, (list, tuple, set, frozenset)):
            return False, state
        return frozenset(hashable(x) for x in seen) == state, state

    def describe(self, state: Any) -> str:
        return "#{" + " ".join(repr(x) for x in sorted(state, key=repr)) + "}"


class Queue:
    """A FIFO queue: enqueue v; dequeue (ok value: the element, null when the queue was empty)."""

    name = "queue"

    def __init__(self, initial: Any = None):
        self.initial = tuple(hashable(x) for x in (initial or ()))

    def init(self) -> Any:
        return self.initial

    def prepare(self, op: Operation) -> Operation | None:
        if op.f not in ("enqueue", "dequeue"):
            raise ModelError(op.call, f"the queue model knows enqueue and dequeue, got {op.f!r}")
        return op

    def read_only(self, op: Operation) -> bool:
        return False

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        if op.f == "enqueue":
            return True, state + (hashable(op.invoke.value),)
        if op.type != "ok":  # an indeterminate dequeue took the head, if there was one
            return (True, state[1:]) if state else (False, state)
        got = hashable(op.completion.value)  # type: ignore[union-attr]
        if not state:
            return got is None, state
        return got == state[0], state[1:]

    def describe(self, state: Any) -> str:
        return "[" + " ".join(repr(x) for x in state) + "]"


MODEL_NAMES = ("register", "cas-register", "kv", "multi-register", "mutex", "set", "queue")


def model_named(name: str, initial: Any = None, *, nil_reads: str | None = None) -> Any:
    """The model for a CLI name; ValueError names the valid ones."""
    if name == "register":
        return Register(initial, cas=False, nil_reads=nil_reads)
    if name == "cas-register":
        return Register(initial, cas=True, nil_reads=nil_reads)
    if name == "kv":
        return KeyValue(initial, nil_reads=nil_reads)
    if name == "multi-register":
        return MultiRegister(initial)
    if name == "mutex":
        return Mutex()
    if name == "set":
        return SetModel(initial)
    if name == "queue":
        return Queue(initial)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def register(initial: Any = None) -> Register:
    return Register(initial, cas=False)


def cas_register(initial: Any = None) -> Register:
    return Register(initial, cas=True)


def kv(initial: Any = None) -> KeyValue:
    return KeyValue(initial)


def multi_register(initial: Any = None) -> MultiRegister:
    return MultiRegister(initial)


def mutex() -> Mutex:
    return Mutex()


def set_model(initial: Any = None) -> SetModel:
    return SetModel(initial)


def queue(initial: Any = None) -> Queue:
    return Queue(initial)
