"""Simulated clients: each runs one operation at a time against a node and records the history.

Like Jepsen's workers, each client is bound to one node (client i to node i mod n) and starts every op
there; it follows a not-leader redirect (the op definitely did not happen there) for a few hops before
it records ``fail``. An op with no answer before its timeout, or whose node crashed mid-way, is ``info``,
and that client continues under a new process id (old + concurrency), as Jepsen's workers do.

Two streams of randomness: what each client does (its ops: keys, values, lock choices) comes from a
Random of its own, and when things happen (message delays, think times) from one shared timing Random.
So an ``OpScript`` -- each kv client's exact ops, each lock client's number of ops -- taken from a run's
history replays that run exactly, and a script with ops removed (shrink.py) changes only what it must.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from splitbrain.histories.op import Op
from splitbrain.targets.raft.sim.cluster import Reply, SimCluster
from splitbrain.targets.raft.sim.events import EventLoop

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Workload:
    concurrency: int = 5
    lock_clients: int = 0                 # how many of the clients run the lock workload (the rest: kv)
    registers: int = 3                    # register keys in use at once (read / write / cas)
    lists: int = 1                        # list keys in use at once (read / append)
    ops_per_key: int = 80                 # then the key retires for a fresh one: bounded per-key histories
    locks: tuple[str, ...] = ("L0",)
    timeout_ms: int = 400
    think_max_ms: float = 4.0
    lock_ttl_ms: int = 150
    lock_stall_p: float = 0.15            # a lock holder stalls past its lease (a GC pause): fencing matters
    unavailable_backoff_ms: tuple[float, float] = (10.0, 40.0)


ScriptOp = tuple[str, Any, Any]  # (f, key, value) as invoked: cas values are [old, new]


@dataclass(frozen=True)
class OpScript:
    """What each client does in a replay: a kv client's exact ops in order; a lock client's number of
    ops (its choices follow outcomes -- tokens, refusals -- and come from its own seeded Random, so the
    first n are the ones the run made). A client not named does nothing."""

    kv: dict[int, tuple[ScriptOp, ...]] = field(default_factory=dict)
    lock: dict[int, int] = field(default_factory=dict)

    @property
    def ops(self) -> int:
        return sum(len(v) for v in self.kv.values()) + sum(self.lock.values())

    @property
    def clients(self) -> int:
        return sum(1 for v in self.kv.values() if v) + sum(1 for n in self.lock.values() if n)

    def __repr__(self) -> str:
        return f"OpScript(kv={self.kv!r}, lock={self.lock!r})"


def op_script(history: Any, workload: Workload) -> OpScript:
    """The script of a simulated run: every client's invocations, in order (client = process mod concurrency)."""
    kv: dict[int, list[ScriptOp]] = {}
    lock: dict[int, int] = {}
    for op in history:
        if not op.is_client or op.type != "invoke":
            continue
        client = op.process % workload.concurrency
        if client < workload.lock_clients:
            lock[client] = lock.get(client, 0) + 1
        else:
            kv.setdefault(client, []).append((op.f, op.key, op.value))
    return OpScript({c: tuple(ops) for c, ops in sorted(kv.items())}, dict(sorted(lock.items())))


class Recorder:
    """Appends ops with index = position and time = simulated ns."""

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.ops: list[Op] = []

    def record(self, type_: str, process: Any, f: str, value: Any, key: Any = None,
               node: str | None = None, error: Any = None) -> Op:
        op = Op(index=len(self.ops), type=type_, process=process, f=f, value=value, key=key,  # type: ignore[arg-type]
                time=self.loop.now_us * 1000, node=node, error=error)
        self.ops.append(op)
        return op


@dataclass
class _Pending:
    seq: int
    f: str
    key: Any
    value: Any
    request: tuple[str, Any]  # ("read", key) | ("write", command)
    node: str
    hops: int = 0


class Clients:
    """All simulated clients; stop issuing once ``budget`` ops were invoked (or, with a ``script``, once
    each client's script is done)."""

    def __init__(self, cluster: SimCluster, recorder: Recorder, workload: Workload, rng: random.Random,
                 budget: int, script: OpScript | None = None) -> None:
        self.cluster = cluster
        self.loop = cluster.loop
        self.recorder = recorder
        self.w = workload
        self.rng = rng  # timing: delays, think times
        self.budget = budget
        self.script = script
        self.invoked = 0
        self.node_ids = list(cluster.nodes)
        self._clients = [_Client(self, i, is_lock=i < workload.lock_clients, rng=random.Random(rng.getrandbits(64)))
                         for i in range(workload.concurrency)]
        self._keys = [f"r{i}" for i in range(workload.registers)] + [f"a{i}" for i in range(workload.lists)]
        self._uses = [0] * len(self._keys)
        self._next_key = len(self._keys)

    def pick_key(self, rng: random.Random) -> str:
        """A key in use; after ``ops_per_key`` ops it is replaced by a fresh key of its kind (r… or a…)."""
        slot = rng.randrange(len(self._keys))
        key = self._keys[slot]
        self._uses[slot] += 1
        if self._uses[slot] >= self.w.ops_per_key:
            self._keys[slot] = f"{key[0]}{self._next_key}"
            self._uses[slot] = 0
            self._next_key += 1
        return key

    def start(self) -> None:
        for c in self._clients:
            self.loop.after(self.rng.randrange(1000, 5000), c.invoke_next)

    @property
    def busy(self) -> bool:
        return any(c.pending is not None for c in self._clients)

    def is_lock_process(self, process: int) -> bool:
        return process % self.w.concurrency < self.w.lock_clients


class _Client:
    def __init__(self, group: Clients, i: int, is_lock: bool, rng: random.Random) -> None:
        self.g = group
        self.rng = rng  # what this client does: its own stream, independent of timing
        self.process = i
        self.owner = f"c{i}"
        self.is_lock = is_lock
        self.node = group.node_ids[i % len(group.node_ids)]
        self.pending: _Pending | None = None
        self._seq = 0
        self._counter = 0
        self._last_seen: dict[str, Any] = {}
        self._holding: int | None = None   # fencing token of the lock we believe we hold
        self._writes_left = 0
        self._lock_name = ""
        script = group.script
        self._script: list[ScriptOp] | None = None  # kv: the ops left to replay
        self._ops_left: int | None = None             # lock: how many ops are left to make
        if script is not None:
            if is_lock:
                self._ops_left = script.lock.get(i, 0)
            else:
                self._script = list(reversed(script.kv.get(i, ())))

    # -- choosing the next op -------------------------------------------------------------------------
    def _fresh(self) -> int:
        self._counter += 1
        return self._counter * 100 + self.process % self.g.w.concurrency  # unique across clients

    def _kv_op(self) -> tuple[str, Any, Any, tuple[str, Any]]:
        if self._script is not None:
            return _request(*self._script.pop())
        rng = self.rng
        key = self.g.pick_key(rng)
        r = rng.random()
        if key.startswith("a"):
            if r < 0.5:
                return "read", key, None, ("read", key)
            v = self._fresh()
            return "append", key, v, ("write", {"op": "append", "key": key, "value": v})
        if r < 0.45:
            return "read", key, None, ("read", key)
        if r < 0.75:
            v = self._fresh()
            return "write", key, v, ("write", {"op": "put", "key": key, "value": v})
        old, new = self._last_seen.get(key), self._fresh()
        return "cas", key, [old, new], ("write", {"op": "cas", "key": key, "old": old, "new": new})

    def _lock_op(self) -> tuple[str, Any, Any, tuple[str, Any]]:
        w = self.g.w
        if self._holding is None:
            name = self.rng.choice(w.locks)
            v = {"lock": name, "owner": self.owner, "ttl_ms": w.lock_ttl_ms}
            return "acquire", None, v, ("write", {"op": "acquire", **v})
        name = self._lock_name
        if self._writes_left > 0:
            v = {"key": f"{name}-resource", "value": self._fresh(), "token": self._holding}
            return "write", None, v, ("write", {"op": "write", **v})
        v = {"lock": name, "owner": self.owner, "token": self._holding}
        return "release", None, v, ("write", {"op": "release", **v})

    # -- running it -----------------------------------------------------------------------------------
    def invoke_next(self) -> None:
        g = self.g
        if g.invoked >= g.budget or self._script == [] or self._ops_left == 0:
            return
        g.invoked += 1
        if self._ops_left is not None:
            self._ops_left -= 1
        f, key, value, request = self._lock_op() if self.is_lock else self._kv_op()
        self._seq += 1
        self.pending = _Pending(self._seq, f, key, value, request, self.node)
        g.recorder.record("invoke", self.process, f, value, key=key, node=self.node)
        g.loop.after(g.w.timeout_ms * 1000, self._timeout, self._seq)
        self._send(self.pending)

    def _send(self, p: _Pending) -> None:
        delay = int(self.g.rng.uniform(200, 1000))
        self.g.loop.after(delay, self._arrive, p)

    def _arrive(self, p: _Pending) -> None:
        if self.pending is not p:
            return
        node = self.g.cluster.nodes[p.node]
        if not node.up:
            self._reply(p, ("fail", None, "connection-refused"))
            return
        reply_fn = self._reply_later(p)
        kind, arg = p.request
        if kind == "read":
            node.request_read(arg, reply_fn)
        else:
            node.request_write(arg, reply_fn)

    def _reply_later(self, p: _Pending):  # noqa: ANN202 - a closure over p
        def reply(r: Reply) -> None:
            self.g.loop.after(int(self.g.rng.uniform(200, 1000)), self._reply, p, r)
        return reply

    def _reply(self, p: _Pending, r: Reply) -> None:
        if self.pending is not p:
            return  # too late: already timed out
        type_, value, error = r
        if type_ == "fail" and isinstance(error, dict) and "not-leader" in error:
            hint = error["not-leader"]
            if p.hops < MAX_REDIRECTS:
                p.hops += 1
                p.node = hint if hint is not None else self.g.rng.choice(self.g.node_ids)
                self._send(p)
                return
            error = "not-leader"
        self._complete(p, type_, value, error)

    def _timeout(self, seq: int) -> None:
        p = self.pending
        if p is not None and p.seq == seq:
            self._complete(p, "info", None, "timeout")

    def _complete(self, p: _Pending, type_: str, value: Any, error: Any) -> None:
        g = self.g
        self.pending = None
        if type_ != "ok":
            value = p.value
        g.recorder.record(type_, self.process, p.f, value, key=p.key, node=p.node, error=error)
        self._learn(p, type_, value)
        if type_ == "info":
            self.process += g.w.concurrency
        think = int(g.rng.uniform(0, g.w.think_max_ms) * 1000)
        if type_ == "fail" and error in ("connection-refused", "connection-lost", "not-leader"):
            think += int(g.rng.uniform(*g.w.unavailable_backoff_ms) * 1000)  # no leader here: back off
        if self.is_lock and self._holding is not None and self.rng.random() < g.w.lock_stall_p:
            think += g.w.lock_ttl_ms * 2 * 1000  # a stall past the lease: another client may take the lock
        g.loop.after(think, self.invoke_next)

    def _learn(self, p: _Pending, type_: str, value: Any) -> None:
        if not self.is_lock:
            if type_ == "ok" and p.f == "read":
                self._last_seen[p.key] = value
            elif type_ == "ok" and p.f == "write":
                self._last_seen[p.key] = p.value
            elif type_ == "ok" and p.f == "cas":
                self._last_seen[p.key] = p.value[1]
            return
        if p.f == "acquire":
            if type_ == "ok":
                self._holding = value["token"]
                self._lock_name = value["lock"]
                self._writes_left = 1 + self.rng.randrange(2)
        elif p.f == "write":
            self._writes_left -= 1
            if type_ == "fail" and p.value is not None:
                self._writes_left = 0  # fenced out: our lease is gone
        elif p.f == "release":
            self._holding = None


def _request(f: str, key: Any, value: Any) -> tuple[str, Any, Any, tuple[str, Any]]:
    """A scripted kv op as (f, key, value, request to the node)."""
    if f == "read":
        return f, key, value, ("read", key)
    if f == "cas":
        old, new = value
        return f, key, value, ("write", {"op": "cas", "key": key, "old": old, "new": new})
    op = "put" if f == "write" else f
    return f, key, value, ("write", {"op": op, "key": key, "value": value})
