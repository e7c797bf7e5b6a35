"""Clients of the internal Raft store for the register, lock, list-append and rw-register workloads.

Each client turns an invocation into exactly one HTTP request and the answer into ok / fail / info
(targets/raft/client.py decides which errors are definite). Nothing is ever retried.
"""

from __future__ import annotations

from typing import Any

from splitbrain.histories.op import Op, fenced_off
from splitbrain.targets.raft.client import Outcome, RaftClient

STALE_TOKEN = "stale-token"  # the store's refusal of a fenced write (targets/raft/core/API.md)


def _completion(op: Op, outcome: Outcome, value: Any = None) -> Op:
    if outcome.status == "ok":
        return op.with_(type="ok", value=value if value is not None else op.value)
    return op.with_(type=outcome.status, error=outcome.error)


class RegisterClient:
    """read / write / cas on independent keys (op.key)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.client = RaftClient(url, timeout=timeout_s)

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f == "read":
            out = self.client.get(op.key)
            return op.with_(type="ok", value=out.value) if out.status == "ok" else _completion(op, out)
        if op.f == "write":
            return _completion(op, self.client.put(op.key, op.value))
        if op.f == "cas":
            old, new = op.value
            return _completion(op, self.client.cas(op.key, old, new))
        raise ValueError(f"the register workload has no op {op.f!r}")

    def close(self, test: Any) -> None:
        self.client.close()


class LockClient:
    """acquire / release of a lock with a lease, and writes to the fenced resource with the token."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.client = RaftClient(url, timeout=timeout_s)

    def invoke(self, test: Any, op: Op) -> Op:
        v = op.value
        if op.f == "acquire":
            out = self.client.acquire(v["lock"], v["owner"], v["ttl_ms"])
            if out.status == "ok":
                token = out.value.get("token") if isinstance(out.value, dict) else out.value
                return op.with_(type="ok", value={**v, "token": token})
            return _completion(op, out)
        if op.f == "release":
            return _completion(op, self.client.release(v["lock"], v["owner"], v["token"]))
        if op.f == "write":
            out = self.client.write(v["key"], v["value"], v["token"])
            if out.status == "fail" and out.error == STALE_TOKEN:
                return op.with_(type="fail", error=fenced_off(f"stale token {v['token']}: the store accepted a newer one"))
            return _completion(op, out)
        raise ValueError(f"the lock workload has no op {op.f!r}")

    def close(self, test: Any) -> None:
        self.client.close()


class TxnClient:
    """list-append and rw-register: each txn is one ``/txn`` request, applied atomically by the state
    machine (its reads served like a get when it only reads)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.client = RaftClient(url, timeout=timeout_s)

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f != "txn":
            raise ValueError(f"the transactional workloads have no op {op.f!r}")
        out = self.client.txn([list(m) for m in op.value])
        return _completion(op, out, out.value)

    def close(self, test: Any) -> None:
        self.client.close()
