"""Clients of the set and unique-ids workloads, through the load balancer. One HTTP request per op, on a
fresh connection, never retried.

Which answers mean what (the balancer stands between client and backend, so its own answers count):

- ``ok``: 200 with the backend's JSON ``{"value": ...}``: the backend applied the request.
- ``fail`` (definitely not applied):
  - the connection to the balancer could not be made (refused, unreachable, connect timed out): not one
    byte of the request left this process;
  - the backend's own JSON error with ``"definite": true`` (its store refused the append), passed on by
    the balancer; with a safe retry policy that is the only backend that saw the request.
- ``info`` (may have been applied), for ``add`` and ``generate``:
  - the request was sent and no answer came (timeout, reset, a closed connection);
  - the backend's JSON error with ``"definite": false``;
  - anything else, above all the balancer's own error pages (502, 503, 504): they do not say whether a
    backend applied the request before it failed or timed out.
- reads (``read``: the set; ``read`` in unique-ids: the log of applied requests) change nothing, so any
  answer but a 200 list is ``fail``.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from splitbrain.histories.op import Op

READ_PATHS = {"set": "/read", "unique-ids": "/generated"}


class LbClient:
    """``add`` v / ``read`` (set), ``generate`` r / ``read`` (unique-ids) against the balancer at ``url``."""

    def __init__(self, url: str, timeout_s: float, workload: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"expected a URL like http://HOST:PORT, got {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.timeout_s = timeout_s
        self.read_path = READ_PATHS[workload]

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f == "add":
            return self._write(op, "/add", {"value": op.value})
        if op.f == "generate":
            return self._write(op, "/generate", {"request": op.value})
        if op.f == "read":
            return self._read(op)
        raise ValueError(f"the lb target has no op {op.f!r}")

    def close(self, test: Any) -> None:
        pass  # a connection lives for one request

    def _write(self, op: Op, path: str, body: dict[str, Any]) -> Op:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            try:
                conn.connect()
            except OSError as e:
                return op.with_(type="fail", error=f"not connected: {e}")
            try:
                status, answer = _exchange(conn, "POST", path, body)
            except (OSError, http.client.HTTPException) as e:
                return op.with_(type="info", error=f"no answer: {type(e).__name__}: {e}")
        finally:
            conn.close()
        if status == 200 and isinstance(answer, dict) and "value" in answer:
            return op.with_(type="ok", value=answer["value"]) if op.f == "generate" else op.with_(type="ok")
        if isinstance(answer, dict) and answer.get("definite") is True and isinstance(answer.get("error"), str):
            return op.with_(type="fail", error=answer["error"])
        error = answer.get("error") if isinstance(answer, dict) else None
        return op.with_(type="info", error=error or f"HTTP {status} from the balancer")

    def _read(self, op: Op) -> Op:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            status, answer = _exchange(conn, "GET", self.read_path, None)
        except (OSError, http.client.HTTPException) as e:
            return op.with_(type="fail", error=f"{type(e).__name__}: {e}")
        finally:
            conn.close()
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("value"), list):
            return op.with_(type="ok", value=answer["value"])
        error = answer.get("error") if isinstance(answer, dict) else None
        return op.with_(type="fail", error=error or f"HTTP {status} from the balancer")


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: Any) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return response.status, None
