"""Clients of etcd's JSON gateway (the v3 HTTP API, keys and values base64) for the register and lock
workloads: one httpx client per worker, talking to its own node, one logical operation per invocation,
never retried.

What an answer means (``Reply.status``, Jepsen's completion types):

- ``ok``    HTTP 200 with a JSON object: etcd did it; the body is its result.
- ``fail``  it certainly did not happen:
            * the request never left this process: the TCP connection could not be opened (refused: the
              node is down; connect or pool timeout). Nothing was sent, so nothing can have been applied.
            * etcd refused it with a gRPC code that etcd only returns before a request is proposed to
              Raft (``DEFINITE_CODES``: invalid argument, not found, permission denied, "too many
              requests", "database space exceeded", out of range, unimplemented, unauthenticated, ...).
- ``info``  it may or may not have happened, at any time after its invocation:
            * the request was sent and no answer came back in time (read/write timeout), or the
              connection broke mid-exchange (reset, closed without an answer);
            * etcd answered an error that can follow a proposal: ``etcdserver: request timed out``
              (Unavailable), ``leader changed``, ``server stopped``, deadline exceeded, cancelled,
              internal/unknown errors -- a proposal may commit after its proposer gave up on it;
            * anything that is not etcd's own JSON answer (a half-broken reply, a non-JSON body).

Per operation:

- register ``read`` (``/v3/kv/range``, linearizable, or ``"serializable": true``): anything but ok is
  ``fail`` -- a read changes nothing, so leaving it out of the history is always sound. A missing key
  reads as null.
- register ``write`` (``/v3/kv/put``): the table above.
- register ``cas`` (``/v3/kv/txn`` comparing the value): ok when the compare held (``succeeded``); a
  txn that answered 200 with the compare false is ``fail`` (nothing was written); otherwise the table.
- lock ``acquire``: a lease (``/v3/lease/grant``, ttl_ms rounded up to whole seconds), then
  ``/v3/lock/lock`` with it, then a linearizable range of the lock key for its create revision, the
  fencing token. A grant that does not come back ok is ``fail`` (a lease alone holds nothing). The lock
  call runs server-side steps (a txn that puts the key, then waits for older keys to go); only a call
  that never connected is ``fail``, every other error ``info``. The range: the key is there with our
  lease -> ``ok`` with its create revision; the key is gone (the lease ran out while waiting: etcd's
  lock then still answers ok) or the range failed -> ``info`` (it may have held the lock for a while).
- lock ``release`` (``/v3/lock/unlock``: deletes the lock key this client got with that token): the
  table above; a token this client holds no key for is ``fail`` without sending anything.
- lock ``write`` to the fenced resource: one txn on a fence key that holds the highest accepted token
  (zero-padded decimal, so etcd's byte-wise compare orders it numerically): ``if stored > token then
  nothing else put(fence, token), put(data, value)``. A missing fence key compares false on its value,
  so the first write is accepted. The else branch ran -> ``ok``; the then branch ran -> ``fail`` with
  "stale token"; otherwise the table.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from splitbrain.histories.op import Op, fenced_off

Status = Literal["ok", "fail", "info"]

# gRPC status codes that etcd returns only for requests it rejected before proposing them to Raft:
# 3 InvalidArgument, 5 NotFound, 6 AlreadyExists, 7 PermissionDenied, 8 ResourceExhausted (too many
# requests, no space), 9 FailedPrecondition, 11 OutOfRange (compacted, future revision),
# 12 Unimplemented, 16 Unauthenticated. Everything else (1 Cancelled, 2 Unknown, 4 DeadlineExceeded,
# 10 Aborted, 13 Internal, 14 Unavailable -- "request timed out", "leader changed" --, 15 DataLoss) may
# come after a proposal that still commits.
DEFINITE_CODES = frozenset({3, 5, 6, 7, 8, 9, 11, 12, 16})

REGISTER_PREFIX = "register/"
FENCE_PREFIX, FENCED_DATA_PREFIX = "fence/", "fenced/"
LOCK_PREFIX = "lock/"
TOKEN_DIGITS = 20  # int64 revisions fit in 19 digits


@dataclass(frozen=True)
class Reply:
    status: Status
    body: dict[str, Any] | None = None
    error: str | None = None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def encoded_value(value: Any) -> str:
    """A register value as etcd stores it: its JSON text, base64 (so a cas compares exact bytes)."""
    return b64(json.dumps(value, sort_keys=True, separators=(",", ":")))


def decoded_value(data: str | None) -> Any:
    return json.loads(unb64(data)) if data else None


def token_text(token: int) -> str:
    """A fencing token as the fence key holds it: zero-padded, so byte order is numeric order."""
    if token < 0 or len(str(token)) > TOKEN_DIGITS:
        raise ValueError(f"a fencing token must be a revision (0 <= token < 10^{TOKEN_DIGITS}), got {token}")
    return f"{token:0{TOKEN_DIGITS}d}"


def lease_seconds(ttl_ms: int | float) -> int:
    """etcd leases are whole seconds: round up, at least 1 (etcd raises it to its own minimum anyway)."""
    return max(1, math.ceil(ttl_ms / 1000))


def reply_of_response(code: int, raw: bytes) -> Reply:
    """The completion type of an HTTP answer from the gateway (see the module docstring)."""
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Reply("info", None, f"HTTP {code} with a body that is not JSON")
    if not isinstance(body, dict):
        return Reply("info", None, f"HTTP {code} with an unexpected body")
    if code == 200 and "error" not in body:
        return Reply("ok", body)
    message = str(body.get("error") or body.get("message") or f"HTTP {code}")
    grpc_code = body.get("code")
    if isinstance(grpc_code, int) and not isinstance(grpc_code, bool) and grpc_code in DEFINITE_CODES:
        return Reply("fail", body, message)
    return Reply("info", body, message)


class Gateway:
    """One keep-alive HTTP connection to one node's gateway. Not thread-safe: one per worker."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url
        # No retries, one connection: a request is sent once, on one connection, straight to the node
        # (trust_env=False: an HTTP_PROXY in the environment must not put anything in between).
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s),
                                 limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                                 transport=httpx.HTTPTransport(retries=0), trust_env=False)

    def call(self, path: str, body: dict[str, Any]) -> Reply:
        try:
            response = self.http.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # The connection was never made: not one byte of the request left this process.
            return Reply("fail", None, f"not connected: {type(e).__name__}: {e}")
        except httpx.TransportError as e:
            # Sent (at least partly) and then the answer was lost: etcd may have done it.
            return Reply("info", None, f"no answer: {type(e).__name__}: {e}")
        return reply_of_response(response.status_code, response.content)

    def close(self) -> None:
        self.http.close()


def _read_outcome(reply: Reply) -> tuple[Status, Any, str | None]:
    if reply.status != "ok":
        return "fail", None, reply.error  # a read changes nothing: dropping it is always sound
    kvs = (reply.body or {}).get("kvs") or []
    return "ok", decoded_value(kvs[0].get("value")) if kvs else None, None


def _completion(op: Op, reply: Reply, value: Any = None) -> Op:
    if reply.status == "ok":
        return op.with_(type="ok", value=op.value if value is None else value)
    return op.with_(type=reply.status, error=reply.error)


class RegisterClient:
    """read / write / cas on independent keys (op.key) of the register workload."""

    def __init__(self, url: str, timeout_s: float, *, serializable: bool = False) -> None:
        self.gateway = Gateway(url, timeout_s)
        self.serializable = serializable

    def read(self, key: Any) -> tuple[Status, Any, str | None]:
        body: dict[str, Any] = {"key": b64(f"{REGISTER_PREFIX}{key}")}
        if self.serializable:
            body["serializable"] = True
        return _read_outcome(self.gateway.call("/v3/kv/range", body))

    def invoke(self, test: Any, op: Op) -> Op:
        key = b64(f"{REGISTER_PREFIX}{op.key}")
        if op.f == "read":
            status, value, error = self.read(op.key)
            return op.with_(type="ok", value=value) if status == "ok" else op.with_(type=status, error=error)
        if op.f == "write":
            return _completion(op, self.gateway.call("/v3/kv/put", {"key": key, "value": encoded_value(op.value)}))
        if op.f == "cas":
            old, new = op.value
            reply = self.gateway.call("/v3/kv/txn", {
                "compare": [{"key": key, "target": "VALUE", "result": "EQUAL", "value": encoded_value(old)}],
                "success": [{"request_put": {"key": key, "value": encoded_value(new)}}],
            })
            if reply.status == "ok" and not (reply.body or {}).get("succeeded", False):
                return op.with_(type="fail", error="compare failed: the value was not the expected one")
            return _completion(op, reply)
        raise ValueError(f"the register workload has no op {op.f!r}")

    def close(self, test: Any) -> None:
        self.gateway.close()


class LockClient:
    """acquire / release on etcd's lease + lock API, and fenced writes guarded by a fence-key txn."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.gateway = Gateway(url, timeout_s)
        self.lock_keys: dict[int, str] = {}  # token -> the base64 lock key this client was granted with it

    def invoke(self, test: Any, op: Op) -> Op:
        v = op.value
        if op.f == "acquire":
            return self.acquire(op, str(v["lock"]), v["ttl_ms"])
        if op.f == "release":
            return self.release(op, v["token"])
        if op.f == "write":
            return self.fenced_write(op, str(v["key"]), v["value"], v["token"])
        raise ValueError(f"the lock workload has no op {op.f!r}")

    def acquire(self, op: Op, lock: str, ttl_ms: int | float) -> Op:
        grant = self.gateway.call("/v3/lease/grant", {"TTL": lease_seconds(ttl_ms)})
        lease = (grant.body or {}).get("ID")
        if grant.status != "ok" or lease is None:
            # Whatever became of the lease, no lock key was written with it.
            return op.with_(type="fail", error=f"lease grant: {grant.error or 'no lease ID in the answer'}")
        locked = self.gateway.call("/v3/lock/lock", {"name": b64(f"{LOCK_PREFIX}{lock}"), "lease": lease})
        if locked.status != "ok":
            not_sent = locked.status == "fail" and (locked.error or "").startswith("not connected")
            return op.with_(type="fail" if not_sent else "info", error=f"lock: {locked.error}")
        lock_key = (locked.body or {}).get("key")
        if not lock_key:
            return op.with_(type="info", error="lock: the answer names no lock key")
        held = self.gateway.call("/v3/kv/range", {"key": lock_key})
        if held.status != "ok":
            return op.with_(type="info", error=f"granted, but reading the lock key failed: {held.error}")
        kvs = (held.body or {}).get("kvs") or []
        if not kvs or str(kvs[0].get("lease")) != str(lease):
            return op.with_(type="info", error="granted, but the lock key is gone: its lease ran out")
        token = int(kvs[0]["create_revision"])
        self.lock_keys[token] = lock_key
        return op.with_(type="ok", value={**op.value, "token": token})

    def release(self, op: Op, token: int) -> Op:
        lock_key = self.lock_keys.get(token)
        if lock_key is None:
            return op.with_(type="fail", error=f"no lock key known for token {token}: nothing sent")
        reply = self.gateway.call("/v3/lock/unlock", {"key": lock_key})
        if reply.status != "info":
            self.lock_keys.pop(token, None)
        return _completion(op, reply)

    def fenced_write(self, op: Op, key: str, value: Any, token: int) -> Op:
        fence = b64(f"{FENCE_PREFIX}{key}")
        tokens = b64(token_text(token))
        reply = self.gateway.call("/v3/kv/txn", {
            "compare": [{"key": fence, "target": "VALUE", "result": "GREATER", "value": tokens}],
            "success": [],
            "failure": [{"request_put": {"key": fence, "value": tokens}},
                        {"request_put": {"key": b64(f"{FENCED_DATA_PREFIX}{key}"), "value": encoded_value(value)}}],
        })
        if reply.status != "ok":
            return _completion(op, reply)
        body = reply.body or {}
        if body.get("succeeded", False):
            return op.with_(type="fail", error=fenced_off(f"stale token {token}: the fence holds a newer one"))
        if len(body.get("responses") or []) != 2:
            return op.with_(type="info", error="the fenced txn answered neither branch's results")
        return op.with_(type="ok")

    def close(self, test: Any) -> None:
        self.gateway.close()
