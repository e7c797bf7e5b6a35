"""The transactional workloads (list-append, rw-register) on etcd: one etcd txn commits each transaction.

etcd's txn has no server-side read-modify-write, so a transaction that writes is made optimistically,
as etcd's own STM does:

1. read every key it touches in one read-only txn (one revision of the store): each key's value (a JSON
   list for list-append, a JSON value for rw-register) and its mod revision;
2. run the micro-ops here on what was read (reads see the txn's own earlier writes);
3. commit with one txn: ``compare`` each key whose value was used (read, or appended to) still has the
   mod revision it was read at (0: still missing), ``success`` puts every written key's new value.

If the compare holds, every value used was still the current one at the commit's revision, so the
transaction took effect atomically there (strict-serializable, whatever revision step 1 read at). If it
does not, nothing was written: a definite failure; the client reads again and tries again, at most
``ATTEMPTS`` times within its timeout (a retry after a *definite* failure is a new attempt, never a
second copy of a commit in doubt). A transaction of reads only is one read-only txn: linearizable by
default, or with ``--read serializable`` answered by the member from its own state, which may be
stale: the anomalies the checker then names (G-single-realtime and friends) are that staleness.

ok / fail / info follow the gateway's table (targets/etcd/client.py): a read-only step that does not come
back ok is ``fail`` (nothing was written); the commit step's answer is ``ok`` (compare held), ``fail``
(compare failed, a definite refusal, not sent) or ``info`` (sent, no answer; an error that can follow a
proposal).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from splitbrain.histories.op import Op
from splitbrain.targets.etcd.client import Gateway, Reply, b64, unb64

TXN_PREFIX = "txn/"
ATTEMPTS = 3

MicroOp = list[Any]


def key_of(k: Any) -> str:
    """The etcd key of a workload key, base64 (its JSON text: ints and strings stay apart)."""
    return b64(TXN_PREFIX + json.dumps(k, sort_keys=True, separators=(",", ":")))


def executed(mops: Sequence[Sequence[Any]], current: Mapping[Any, Any]) -> tuple[list[MicroOp], dict[Any, Any], set[Any]]:
    """The micro-ops run on ``current`` (key -> value, missing = None): the completed micro-ops, the
    written keys' new values, and the keys whose current value the txn used (the ones to guard)."""
    state = dict(current)
    written: dict[Any, Any] = {}
    used: set[Any] = set()
    done: list[MicroOp] = []
    for f, k, v in mops:
        if k not in written and f in ("r", "append"):
            used.add(k)
        if f == "r":
            done.append(["r", k, copy.deepcopy(state.get(k))])
            continue
        if f == "append":
            value = [*(state.get(k) or []), v]
        elif f == "w":
            value = v
        else:
            raise ValueError(f"the transactional workloads have no micro-op {f!r}")
        state[k] = written[k] = value
        done.append([f, k, v])
    return done, written, used


class TxnClient:
    """list-append and rw-register on etcd's JSON gateway, one worker's connection to one member."""

    def __init__(self, url: str, timeout_s: float, *, serializable: bool = False) -> None:
        self.gateway = Gateway(url, timeout_s)
        self.timeout_s = timeout_s
        self.serializable = serializable

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f != "txn":
            raise ValueError(f"the transactional workloads have no op {op.f!r}")
        mops = [list(m) for m in op.value]
        keys = list(dict.fromkeys(k for _, k, _ in mops))
        if all(f == "r" for f, _, _ in mops):
            status, read, error = self.read(keys)
            if status != "ok":
                return op.with_(type="fail", error=error)
            return op.with_(type="ok", value=executed(mops, {k: v for k, (v, _) in read.items()})[0])
        done, written, used = executed(mops, {})
        if not used:  # blind writes: nothing to read, nothing to guard
            reply = self.commit(written, {})
            return op.with_(type="ok", value=done) if reply.status == "ok" else op.with_(type=reply.status,
                                                                                           error=reply.error)
        started = time.monotonic()
        error = ""
        for _ in range(ATTEMPTS):
            status, read, error = self.read(keys)
            if status != "ok":
                return op.with_(type="fail", error=f"reading the keys: {error}")
            done, written, used = executed(mops, {k: v for k, (v, _) in read.items()})
            reply = self.commit(written, {k: read[k][1] for k in used})
            if reply.status == "ok" and (reply.body or {}).get("succeeded", False):
                return op.with_(type="ok", value=done)
            if reply.status != "ok":
                return op.with_(type=reply.status, error=reply.error)
            error = "compare failed: a key changed between the read and the commit"
            if time.monotonic() - started > self.timeout_s:
                break
        return op.with_(type="fail", error=error)

    def read(self, keys: Sequence[Any]) -> tuple[str, dict[Any, tuple[Any, int]], str | None]:
        """Every key's (value, mod revision) at one revision of the store, by one read-only txn."""
        ranges = [{"request_range": {"key": key_of(k), **({"serializable": True} if self.serializable else {})}}
                  for k in keys]
        reply = self.gateway.call("/v3/kv/txn", {"success": ranges})
        if reply.status != "ok":
            return "fail", {}, reply.error
        responses = (reply.body or {}).get("responses") or []
        if len(responses) != len(keys):
            return "fail", {}, "the read-only txn answered another number of ranges"
        read = {}
        for k, response in zip(keys, responses, strict=True):
            kvs = (response.get("response_range") or {}).get("kvs") or []
            read[k] = (json.loads(unb64(kvs[0]["value"])), int(kvs[0]["mod_revision"])) if kvs else (None, 0)
        return "ok", read, None

    def commit(self, written: Mapping[Any, Any], guards: Mapping[Any, int]) -> Reply:
        compare = [{"key": key_of(k), "target": "MOD", "result": "EQUAL", "mod_revision": str(rev)}
                   for k, rev in guards.items()]
        puts = [{"request_put": {"key": key_of(k), "value": b64(json.dumps(v, separators=(",", ":")))}}
                for k, v in written.items()]
        return self.gateway.call("/v3/kv/txn", {"compare": compare, "success": puts})

    def close(self, test: Any) -> None:
        self.gateway.close()
