"""kazoo clients of ZooKeeper for the register and lock workloads.

One KazooClient per worker, connected to its own node only (a client that fails over to another server
would change what is tested). Every request is sent once, through kazoo's async API with the op's time
budget; nothing is retried, and kazoo's own retries are switched off (the lock recipe gets a one-try
policy). An op of several requests sends the next one only after the previous was definitely refused,
so at most one of them can have taken effect.

What an error means (``completion_for_error``):

* fail -- the op definitely did not happen:
  - ``NoNodeError``, ``NodeExistsError``, ``BadVersionError``, ``NotEmptyError``: the server applied
    the request's checks and refused it (a refused write is an error transaction that changes nothing);
  - ``SessionExpiredError``: kazoo refuses to send on an expired session, and a server refuses requests
    of a session that has expired (an expired session's ephemeral lock nodes are gone for good);
  - ``ConnectionClosedError`` / ``AuthFailedError``: refused by kazoo before sending;
  - the op's time ran out before its next request was sent (the earlier ones were refused);
  - a read that errs: reads change nothing, so a read is never ``info``.
* info -- it may have happened: ``ConnectionLoss`` (kazoo answers it for requests in flight when a
  connection drops), ``OperationTimeoutError``, kazoo's timeout waiting for the answer (after sending),
  and anything unexpected.

Register (``read`` / ``write`` / ``cas`` on independent keys, values JSON in znode data, one znode per
key under /splitbrain/register, created by the first write; a read of a missing znode is null):

* read, ``read=sync`` (the default): ``sync`` then ``get``, pipelined on the session's connection, so
  the server answers the get only after it has caught up with the leader as of the sync. ``read=local``:
  just ``get``: whatever the connected server has applied, which ZooKeeper only promises to be
  sequentially consistent -- a stale read after a newer acknowledged write is the expected finding.
* write: ``set_data``; on NoNode ``create``; on NodeExists (a racing first write) ``set_data`` again.
* cas [old, new]: ``get`` (value and version), then ``set_data(new, version=read version)``. The versioned
  set is one atomic step at the leader: it applies only if no write reached the znode since the version
  that was read (znodes here are never deleted, so a version is never reused), i.e. only if the value at
  the set's linearization point is still the value read. A stale ``get`` (local mode) can only make the
  set fail on a newer version, never apply on a wrong value. A missing znode with old == null: ``create``.

Lock (kazoo's ``Lock`` recipe on /splitbrain/locks/<name>, non-blocking acquire): the fencing token is
the sequence number of the lock's ephemeral sequential node (ZooKeeper assigns them in increasing order
under one parent, so a later grant has a larger token). An acquire that may have left its node behind
(a timeout or connection loss mid-recipe, or a failed cleanup) is ``info``, and the worker's session is
replaced, which removes any such node (ephemeral) so it cannot hold the lock unseen. ZooKeeper grants have
no lease: a holder keeps the lock until it releases or its session expires (the session timeout, not the
op's ``ttl_ms``). The fenced resource is a znode /splitbrain/fenced/<key> holding ``{"token", "value"}``;
a write reads it and sets it with the version read, refused ("stale token") when it holds a larger token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionExpiredError,
)
from kazoo.recipe.lock import Lock
from kazoo.retry import KazooRetry
from splitbrain.histories.op import Op, fenced_off

ROOT = "/splitbrain"
REGISTER_ROOT, LOCK_ROOT, FENCED_ROOT = f"{ROOT}/register", f"{ROOT}/locks", f"{ROOT}/fenced"
SESSION_TIMEOUT_S = 3.0
REFUSED = (NoNodeError, NodeExistsError, BadVersionError, NotEmptyError)
NOT_SENT = (SessionExpiredError, ConnectionClosedError, AuthFailedError)

logging.getLogger("kazoo").setLevel(logging.WARNING)


class OutOfTime(Exception):
    """The op's budget ran out before its next request was sent: that request was never sent."""


def new_kazoo(hosts: str, session_timeout_s: float = SESSION_TIMEOUT_S) -> KazooClient:
    """A client of ``hosts`` (one server) that reconnects quickly and never retries a command."""
    return KazooClient(hosts=hosts, timeout=session_timeout_s,
                       connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5},
                       command_retry={"max_tries": 1})


def ready_write(hosts: str, timeout_s: float = 5.0) -> bool:
    """Whether a write through ``hosts`` succeeds; creates the workloads' parent znodes on the way."""
    zk = new_kazoo(hosts)
    try:
        zk.start(timeout=timeout_s)
        for path in (REGISTER_ROOT, LOCK_ROOT, FENCED_ROOT):
            zk.ensure_path(path)
        zk.set(ROOT, str(time.time()).encode())
        return True
    except Exception:  # noqa: BLE001 - not ready yet, whatever the reason; the caller tries again
        return False
    finally:
        close_quietly(zk)


def close_quietly(zk: KazooClient) -> None:
    try:
        zk.stop()
        zk.close()
    except Exception:  # noqa: BLE001 - closing a client of a dead server: its session expires by itself
        pass


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def completion_for_error(op: Op, error: BaseException) -> Op:
    """fail or info for an op that ended in ``error`` (see the module docstring)."""
    text = describe(error)
    if op.f == "read" or isinstance(error, REFUSED + NOT_SENT + (OutOfTime,)):
        return op.with_(type="fail", error=text)
    return op.with_(type="info", error=text)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def decode(data: bytes) -> Any:
    return json.loads(data) if data else None


class Budget:
    """An op's time: each request waits for its answer for what is left of it."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime("the op's time ran out before its next request")
        return left

    def wait(self, async_result: Any) -> Any:
        """The answer of a request that was sent; kazoo's timeout here is info (it may still apply)."""
        return async_result.get(timeout=max(0.0, self.deadline - time.monotonic()))


class ZooKeeperClient:
    """One kazoo session with one server; ``open`` waits (bounded) for the first connection."""

    def __init__(self, hosts: str, timeout_s: float) -> None:
        self.hosts = hosts
        self.timeout_s = timeout_s
        self.zk = self._connect(wait_s=10)

    def _connect(self, wait_s: float) -> KazooClient:
        zk = new_kazoo(self.hosts)
        event = zk.start_async()
        event.wait(timeout=wait_s)  # not connected yet: its ops time out (info) or are refused (fail)
        return zk

    def renew_session(self) -> None:
        """A new session; the old one is closed in the background (its ephemeral nodes go with it)."""
        old, self.zk = self.zk, self._connect(wait_s=min(1.0, self.timeout_s))
        threading.Thread(target=close_quietly, args=(old,), name="zk-close", daemon=True).start()

    def close(self, test: Any) -> None:
        close_quietly(self.zk)


class RegisterClient(ZooKeeperClient):
    """read / write / cas on independent keys (op.key); ``read`` is ``sync`` or ``local``."""

    def __init__(self, hosts: str, timeout_s: float, read: str = "sync") -> None:
        super().__init__(hosts, timeout_s)
        self.read_mode = read

    def invoke(self, test: Any, op: Op) -> Op:
        path = f"{REGISTER_ROOT}/{op.key}"
        budget = Budget(self.timeout_s)
        try:
            if op.f == "read":
                return op.with_(type="ok", value=self.read(path, budget))
            if op.f == "write":
                self.write(path, op.value, budget)
                return op.with_(type="ok")
            if op.f == "cas":
                old, new = op.value
                refusal = self.cas(path, old, new, budget)
                return op.with_(type="fail", error=refusal) if refusal else op.with_(type="ok")
        except Exception as e:  # noqa: BLE001 - every error is classified, none escapes as a traceback
            return completion_for_error(op, e)
        raise ValueError(f"the register workload has no op {op.f!r}")

    def read(self, path: str, budget: Budget) -> Any:
        synced = self.zk.sync_async(REGISTER_ROOT) if self.read_mode == "sync" else None
        got = self.zk.get_async(path)
        if synced is not None:
            budget.wait(synced)  # an error here means the get may not have seen the leader's state
        try:
            data, _ = budget.wait(got)
        except NoNodeError:
            return None
        return decode(data)

    def write(self, path: str, value: Any, budget: Budget) -> None:
        data = encode(value)
        try:
            budget.wait(self.zk.set_async(path, data))
            return
        except NoNodeError:
            pass
        budget.left()
        try:
            budget.wait(self.zk.create_async(path, data))
            return
        except NodeExistsError:
            pass
        budget.left()
        budget.wait(self.zk.set_async(path, data))

    def cas(self, path: str, old: Any, new: Any, budget: Budget) -> str | None:
        """None when the cas applied, else why it was refused (raises on indeterminate errors)."""
        try:
            data, stat = budget.wait(self.zk.get_async(path))
        except NoNodeError:
            if old is not None:
                return "the value is null (no znode)"
            budget.left()
            budget.wait(self.zk.create_async(path, encode(new)))  # NodeExists: refused, fail
            return None
        current = decode(data)
        if current != old:
            return f"the value is {current!r}"
        budget.left()
        budget.wait(self.zk.set_async(path, encode(new), version=stat.version))
        return None


class _TimedZk:
    """What kazoo's Lock recipe calls on its client, each request bounded by one op's budget."""

    def __init__(self, zk: KazooClient, budget: Budget) -> None:
        self._zk = zk
        self._budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self._zk, name)  # handler, add_listener, remove_listener, ...

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._budget.left()
        return self._budget.wait(getattr(self._zk, f"{name}_async")(*args, **kwargs))

    def create(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("create", *args, **kwargs)

    def get_children(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_children", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete", *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def ensure_path(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("ensure_path", *args, **kwargs)


class OneShotLock(Lock):
    """kazoo's Lock with one try per request, and a record of what went wrong and whether the cleanup of a
    failed acquire removed its node."""

    def __init__(self, client: Any, path: str, identifier: str) -> None:
        super().__init__(client, path, identifier)
        self._retry = KazooRetry(max_tries=1, ignore_expire=False)
        self.error: BaseException | None = None
        self.cleaned = False

    def _inner_acquire(self, blocking: bool, timeout: Any, ephemeral: bool = True) -> bool:
        try:
            return super()._inner_acquire(blocking, timeout, ephemeral)
        except Exception as e:
            self.error = e
            raise

    def _best_effort_cleanup(self) -> None:
        try:
            node = self.node or self._find_node()
            if node:
                self._delete_node(node)
            self.cleaned = True  # deleted, or never created
        except NoNodeError:
            self.cleaned = True
        except Exception:  # noqa: BLE001 - unknown: the node may still be there (the caller says info)
            self.cleaned = False


def token_of(lock_node: str) -> int:
    """The sequence number ZooKeeper appended to a lock node's name (its last 10 digits)."""
    return int(lock_node[-10:])


class LockClient(ZooKeeperClient):
    """acquire / release with kazoo's Lock recipe, and fenced writes checked by a versioned set."""

    def __init__(self, hosts: str, timeout_s: float) -> None:
        super().__init__(hosts, timeout_s)
        self.held: dict[int, OneShotLock] = {}

    def invoke(self, test: Any, op: Op) -> Op:
        v = op.value
        budget = Budget(self.timeout_s)
        try:
            if op.f == "acquire":
                return self.acquire(op, v["lock"], v["owner"], budget)
            if op.f == "release":
                return self.release(op, v["token"], budget)
            if op.f == "write":
                refusal = self.fenced_write(f"{FENCED_ROOT}/{v['key']}", v["value"], v["token"], budget)
                return op.with_(type="fail", error=fenced_off(refusal)) if refusal else op.with_(type="ok")
        except Exception as e:  # noqa: BLE001 - every error is classified, none escapes as a traceback
            return completion_for_error(op, e)
        raise ValueError(f"the lock workload has no op {op.f!r}")

    def acquire(self, op: Op, name: str, owner: str, budget: Budget) -> Op:
        lock = OneShotLock(_TimedZk(self.zk, budget), f"{LOCK_ROOT}/{name}", owner)
        try:
            got = lock.acquire(blocking=False)
        except Exception as e:  # noqa: BLE001 - classified below
            lock.error = lock.error or e
            got = False
        if got:
            token = token_of(lock.node)
            self.held[token] = lock
            return op.with_(type="ok", value={**op.value, "token": token})
        error = lock.error
        never_created = not lock.create_tried or (
            lock.node is None and isinstance(error, REFUSED + NOT_SENT + (OutOfTime,)))
        if never_created or isinstance(error, SessionExpiredError):  # an expired session's nodes are gone
            return op.with_(type="fail", error=describe(error) if error else "not created")
        if error is None and lock.cleaned:
            return op.with_(type="fail", error="held by another owner")
        # Our node may be left behind, and could become the lock unseen: end the session it belongs to.
        self.renew_session()
        self.held.clear()
        error = error or RuntimeError("the lock node's cleanup failed")
        return op.with_(type="info", error=describe(error))

    def release(self, op: Op, token: int, budget: Budget) -> Op:
        lock = self.held.pop(token, None)
        if lock is None or lock.node is None:
            return op.with_(type="fail", error="not held by this client")
        path = f"{lock.path}/{lock.node}"
        try:
            budget.wait(self.zk.delete_async(path))
        except NoNodeError:
            return op.with_(type="fail", error="not held: the lock node is gone (its session expired)")
        lock.is_acquired = False
        return op.with_(type="ok")

    def fenced_write(self, path: str, value: Any, token: int, budget: Budget) -> str | None:
        """None when written, else why it was refused (raises on indeterminate errors)."""
        data = encode({"token": token, "value": value})
        try:
            current, stat = budget.wait(self.zk.get_async(path))
        except NoNodeError:
            budget.left()
            budget.wait(self.zk.create_async(path, data))
            return None
        stored = (decode(current) or {}).get("token")
        if stored is not None and stored > token:
            return f"stale token {token}: the resource has token {stored}"
        budget.left()
        budget.wait(self.zk.set_async(path, data, version=stat.version))
        return None
