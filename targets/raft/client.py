"""A small blocking HTTP client for the Raft store, for workloads, tests and the benchmark.

Every call returns an ``Outcome`` whose ``status`` is Jepsen's completion type:

- ``ok``   the store answered 200: the operation took effect, ``value`` is its result;
- ``fail`` it certainly did not take effect: the store said so (``"definite": true``), or the request
           never left this process (connection refused, connect timed out);
- ``info`` it may or may not have taken effect: the request was sent and then the answer was lost
           (timeout, connection reset, a non-JSON answer from something in between, or the store said
           ``"definite": false``).

A ``get`` (or a txn of reads only) that does not come back ok is ``fail`` whatever the cause: a read changes nothing, so leaving
it out of the history is always sound. Nothing is ever retried: the caller decides.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from splitbrain.targets.raft.server.http_api import OPERATIONS

Status = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    value: Any = None
    error: str | None = None


class RaftClient:
    """One keep-alive HTTP connection to one node. Not thread-safe: one client per thread."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url if "//" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"expected a base URL like http://HOST:PORT, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RaftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the operations -------------------------------------------------------------------------

    def get(self, key: Any) -> Outcome:
        outcome = self._call("get", {"key": key})
        return outcome if outcome.status != "info" else Outcome("fail", None, outcome.error)

    def put(self, key: Any, value: Any) -> Outcome:
        return self._call("put", {"key": key, "value": value})

    def cas(self, key: Any, old: Any, new: Any) -> Outcome:
        return self._call("cas", {"key": key, "old": old, "new": new})

    def append(self, key: Any, value: Any) -> Outcome:
        return self._call("append", {"key": key, "value": value})

    def acquire(self, lock: str, owner: str, ttl_ms: int) -> Outcome:
        return self._call("acquire", {"lock": lock, "owner": owner, "ttl_ms": ttl_ms})

    def release(self, lock: str, owner: str, token: int) -> Outcome:
        return self._call("release", {"lock": lock, "owner": owner, "token": token})

    def write(self, key: Any, value: Any, token: int) -> Outcome:
        return self._call("write", {"key": key, "value": value, "token": token})

    def txn(self, mops: list[list[Any]]) -> Outcome:
        """A transaction of micro-ops ``[f, k, v]`` (f: r | append | w), applied atomically; ok value the
        micro-ops with the reads' values. A txn of reads only is a read: not ok means fail."""
        outcome = self._call("txn", {"mops": mops})
        if outcome.status == "info" and all(m[0] == "r" for m in mops):
            return Outcome("fail", None, outcome.error)
        return outcome

    def status(self) -> dict[str, Any] | None:
        """The node's /status, or None when it cannot be reached."""
        try:
            code, body = self._exchange("GET", "/status", None)
        except (OSError, http.client.HTTPException, ValueError):
            self.close()
            return None
        return body if code == 200 and isinstance(body, dict) else None

    # --- the mapping from HTTP outcomes to ok/fail/info -------------------------------------------

    def _call(self, operation: str, args: dict[str, Any]) -> Outcome:
        path = OPERATIONS[operation][0]
        try:
            self._connect()
        except OSError as e:
            # Refused, unreachable or connect timed out: not one byte of the request was sent.
            return Outcome("fail", None, f"not connected: {e}")
        try:
            code, body = self._exchange("POST", path, args)
        except (OSError, http.client.HTTPException, ValueError) as e:
            # Sent (at least partly) and no answer: the store may have executed it.
            self.close()
            return Outcome("info", None, f"no answer: {type(e).__name__}: {e}")
        return outcome_of_response(code, body)

    def _connect(self) -> None:
        if self._conn is not None and _closed_by_peer(self._conn):
            # The node closed this idle connection (it restarted, or it stopped): a request on it would
            # be lost with an unknown fate. A fresh connection makes a refusal a definite fail.
            self.close()
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError:
                conn.close()
                raise
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn

    def _exchange(self, method: str, path: str, args: dict[str, Any] | None) -> tuple[int, Any]:
        self._connect()
        assert self._conn is not None
        payload = json.dumps(args).encode() if args is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        self._conn.request(method, path, body=payload, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        if response.will_close:
            self.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return response.status, None


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection has nothing to read unless the other side closed or reset it."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def outcome_of_response(code: int, body: Any) -> Outcome:
    """The completion type of an HTTP answer (see the module docstring)."""
    if code == 200 and isinstance(body, dict) and "value" in body:
        return Outcome("ok", body["value"])
    if isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("definite"), bool):
        return Outcome("fail" if body["definite"] else "info", body.get("value"), body["error"])
    # Not the store's own answer (a proxy's error page, a half-broken reply): its fate is unknown.
    return Outcome("info", None, f"unexpected HTTP {code} answer")
