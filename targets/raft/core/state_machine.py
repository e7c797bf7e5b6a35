"""The replicated state machine: a key-value store, leased locks with fencing tokens, a fenced resource.

Pure and deterministic: the same committed entries give the same results on every replica. Time comes
only from the ``now_ms`` the leader stamped into each command from its monotonic clock. Stamps of one
term come from one leader, so they are comparable only within a term: a lease granted in an earlier
term is extended to run its whole ttl again from the first stamp of the current term (as etcd's lessor
does on a leader change). That keeps leases safe whatever the nodes' wall clocks say.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from splitbrain.targets.raft.core.types import Entry


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """``ok`` False = the command definitely had no effect; ``error`` says why."""

    ok: bool
    value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Lock:
    owner: Any
    token: int
    term: int        # the term whose leader's clock ``granted_ms`` is read on
    granted_ms: int
    ttl_ms: int


def appended(current: Any, value: Any) -> tuple[bool, Any]:
    """The kv model's append: missing + str -> str, missing + other -> [v], list -> list + [v], str + str."""
    if current is None:
        return True, value if isinstance(value, str) else [value]
    if isinstance(current, list):
        return True, current + [value]
    if isinstance(current, str) and isinstance(value, str):
        return True, current + value
    return False, current


class StateMachine:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.fencing = "no-fencing" not in bugs
        self.applied_index = 0
        self.term = 0
        self.term_started_ms = 0  # first stamp seen in ``term``
        self.now_ms = 0
        self._kv: dict[str, Any] = {}
        self._locks: dict[str, _Lock] = {}
        self._fenced: dict[str, tuple[Any, int]] = {}  # key -> (value, newest accepted token)

    def read(self, key: str) -> Any:
        return copy.deepcopy(self._kv.get(key))

    def read_txn(self, mops: list[list[Any]]) -> list[list[Any]]:
        """A read-only txn at this instant: each ``["r", k, None]`` with the value of k filled in."""
        return [[f, k, self.read(k)] for f, k, _ in mops]

    def snapshot(self) -> dict[str, Any]:
        return {
            "applied_index": self.applied_index,
            "term": self.term,
            "term_started_ms": self.term_started_ms,
            "now_ms": self.now_ms,
            "kv": copy.deepcopy(self._kv),
            "locks": {n: [lk.owner, lk.token, lk.term, lk.granted_ms, lk.ttl_ms]
                      for n, lk in sorted(self._locks.items())},
            "fenced": {k: [v, t] for k, (v, t) in sorted(self._fenced.items())},
        }

    def apply(self, entry: Entry) -> ApplyResult:
        if entry.index != self.applied_index + 1:
            raise ValueError(f"state machine: entry {entry.index} applied after {self.applied_index} (must be in order)")
        self.applied_index = entry.index
        cmd = entry.command
        if cmd is None:
            return ApplyResult(True)
        stamp = cmd.get("now_ms")
        if isinstance(stamp, int) and not isinstance(stamp, bool):
            if entry.term > self.term:
                self.term, self.term_started_ms, self.now_ms = entry.term, stamp, stamp
            elif entry.term == self.term:
                self.now_ms = max(self.now_ms, stamp)
        handler = _COMMANDS.get(cmd.get("op"))  # type: ignore[arg-type]
        if handler is None:
            return ApplyResult(False, error=f"unknown-command {cmd.get('op')!r}")
        try:
            return handler(self, cmd, entry.index)
        except (KeyError, TypeError) as e:
            return ApplyResult(False, error=f"malformed-command {e}")

    # -- key-value ------------------------------------------------------------------------------------
    def _put(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        self._kv[cmd["key"]] = copy.deepcopy(cmd["value"])
        return ApplyResult(True, cmd["value"])

    def _get(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        return ApplyResult(True, self.read(cmd["key"]))

    def _cas(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        key = cmd["key"]
        if self._kv.get(key) != cmd["old"]:
            return ApplyResult(False, error="cas-mismatch")
        self._kv[key] = copy.deepcopy(cmd["new"])
        return ApplyResult(True, [cmd["old"], cmd["new"]])

    def _append(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        key = cmd["key"]
        ok, new = appended(self._kv.get(key), copy.deepcopy(cmd["value"]))
        if not ok:
            return ApplyResult(False, error="not-appendable")
        self._kv[key] = new
        return ApplyResult(True, cmd["value"])

    def _txn(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        """Micro-ops in order, all or nothing: ``["r", k, _]`` reads (its own earlier writes included),
        ``["append", k, v]`` appends as ``append`` does, ``["w", k, v]`` puts. The ok value is the
        micro-ops with each read's value filled in; one append that cannot apply fails the whole txn."""
        written: dict[Any, Any] = {}  # this txn's writes, made visible only when every micro-op applies
        done = []
        for f, k, v in cmd["mops"]:
            current = written[k] if k in written else self._kv.get(k)
            if f == "r":
                done.append([f, k, copy.deepcopy(current)])
                continue
            if f == "append":
                ok, new = appended(current, copy.deepcopy(v))
                if not ok:
                    return ApplyResult(False, error="not-appendable")
                written[k] = new
            elif f == "w":
                written[k] = copy.deepcopy(v)
            else:
                return ApplyResult(False, error=f"malformed-command micro-op {f!r}")
            done.append([f, k, v])
        self._kv.update(written)
        return ApplyResult(True, done)

    # -- locks ----------------------------------------------------------------------------------------
    def _live_lock(self, name: str) -> _Lock | None:
        lock = self._locks.get(name)
        if lock is None:
            return None
        # A lease of an earlier term runs its full ttl again from the start of this term.
        start = lock.granted_ms if lock.term == self.term else self.term_started_ms
        if self.now_ms >= start + lock.ttl_ms:
            del self._locks[name]  # the lease ran out: the lock is free
            return None
        return lock

    def _acquire(self, cmd: dict[str, Any], index: int) -> ApplyResult:
        name, owner, ttl = cmd["lock"], cmd["owner"], int(cmd["ttl_ms"])
        if self._live_lock(name) is not None:
            return ApplyResult(False, error="lock-held")
        self._locks[name] = _Lock(owner, index, self.term, self.now_ms, ttl)
        return ApplyResult(True, {"lock": name, "owner": owner, "ttl_ms": ttl, "token": index})

    def _release(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        name, owner, token = cmd["lock"], cmd["owner"], cmd["token"]
        lock = self._live_lock(name)
        if lock is None or lock.owner != owner or lock.token != token:
            return ApplyResult(False, error="not-holder")
        del self._locks[name]
        return ApplyResult(True, {"lock": name, "owner": owner, "token": token})

    def _fenced_write(self, cmd: dict[str, Any], _: int) -> ApplyResult:
        key, value, token = cmd["key"], cmd["value"], int(cmd["token"])
        newest = self._fenced.get(key, (None, 0))[1]
        if self.fencing and token < newest:
            return ApplyResult(False, error="stale-token")
        self._fenced[key] = (copy.deepcopy(value), max(newest, token))
        return ApplyResult(True, {"key": key, "value": value, "token": token})


_COMMANDS = {
    "put": StateMachine._put,
    "get": StateMachine._get,
    "cas": StateMachine._cas,
    "append": StateMachine._append,
    "txn": StateMachine._txn,
    "acquire": StateMachine._acquire,
    "release": StateMachine._release,
    "write": StateMachine._fenced_write,
}
