"""The replicated backend behind the load balancer: a tiny HTTP server whose state lives in the internal
Raft store (the Raft server on the same node), so every backend sees the same state.

    POST /add       {"value": v}      append v to the list "set"             {"value": v}
    GET  /read                        the list "set"                         {"value": [...]}
    POST /generate  {"request": r}    append r to the list "generated";      {"value": id}
                                      id = r's (last) position in it, from 1
    GET  /generated                   the list "generated"                   {"value": [...]}
    POST /kv/get, /kv/put, /kv/cas    the store's own register API, passed on as one store operation each
                                      (so the Raft store's client works through the balancer)
    GET  /health                      200 while the process runs (HAProxy's check)

A write is one Raft operation (an append), never retried here: applying a request twice is the fault this
target exists to expose, so only the balancer in front may do that. Answers keep the Raft client's
verdict: 200 = applied; 503 ``{"error", "definite": true}`` = certainly not applied; 500 ``{"error",
"definite": false}`` = may have been applied (the store's answer was lost, or /generate applied its append
and then could not read the position back).

Usage: python -m splitbrain.targets.lb.backend --listen HOST:PORT --store http://HOST:PORT
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from splitbrain.targets.raft.client import Outcome, RaftClient

SET_KEY, GENERATED_KEY = "set", "generated"
POST_FIELDS = {"/add": ("value",), "/generate": ("request",), "/kv/get": ("key",), "/kv/put": ("key", "value"),
               "/kv/cas": ("key", "old", "new")}
STORE_TIMEOUT_S = 2.0


def last_position(log: list[Any], request: Any) -> int | None:
    """Where ``request`` last appears in ``log``, counting from 1 (None if it does not)."""
    for i in range(len(log) - 1, -1, -1):
        if log[i] == request:
            return i + 1
    return None


def answer_of(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body that carry a store outcome to the client unchanged in meaning."""
    if outcome.status == "ok":
        return 200, {"value": outcome.value}
    if outcome.status == "fail":
        return 503, {"error": outcome.error or "not applied", "definite": True}
    return 500, {"error": outcome.error or "unknown outcome", "definite": False}


class Backend:
    """The operations; each request gets its own connection to the store (``store()`` opens one)."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self.store = store

    def _append(self, store: Any, key: str, element: Any) -> Outcome:
        # Wrapped in a one-element list: the store's append concatenates strings (see appended() in
        # targets/raft/core/state_machine.py), and a list of lists keeps every element whole.
        outcome = store.append(key, [element])
        return Outcome("ok", element) if outcome.status == "ok" else outcome

    def _read(self, store: Any, key: str) -> Outcome:
        outcome = store.get(key)
        if outcome.status != "ok":
            return outcome
        if outcome.value is None:
            return Outcome("ok", [])  # nothing appended yet
        if not isinstance(outcome.value, list) or not all(isinstance(e, list) and len(e) == 1 for e in outcome.value):
            return Outcome("fail", None, f"the store holds no list of elements under {key!r}: {outcome.value!r}")
        return Outcome("ok", [e[0] for e in outcome.value])

    def read_list(self, key: str) -> tuple[int, dict[str, Any]]:
        with closing(self.store()) as store:
            return answer_of(self._read(store, key))

    def add(self, value: Any) -> tuple[int, dict[str, Any]]:
        with closing(self.store()) as store:
            return answer_of(self._append(store, SET_KEY, value))

    def register(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """get / put / cas of the store's kv API, its answer carried unchanged in meaning."""
        with closing(self.store()) as store:
            if operation == "get":
                return answer_of(store.get(body["key"]))
            if operation == "put":
                return answer_of(store.put(body["key"], body["value"]))
            return answer_of(store.cas(body["key"], body["old"], body["new"]))

    def generate(self, request: Any) -> tuple[int, dict[str, Any]]:
        with closing(self.store()) as store:
            appended = self._append(store, GENERATED_KEY, request)
            if appended.status != "ok":
                return answer_of(appended)
            read = self._read(store, GENERATED_KEY)
        position = last_position(read.value, request) if read.status == "ok" else None
        if position is None:  # applied, but its id is unknown: the client must not count it as failed
            return 500, {"error": f"applied, but the id could not be read: {read.error or read.value!r}",
                         "definite": False}
        return 200, {"value": position}


class Handler(BaseHTTPRequestHandler):
    backend: Backend  # set on the subclass that serve() makes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would drown the node's log

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length)) if length else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        routes = {"/read": SET_KEY, "/generated": GENERATED_KEY}
        if self.path == "/health":
            self._reply(200, {"value": "up"})
        elif self.path in routes:
            self._reply(*self.backend.read_list(routes[self.path]))
        else:
            self._reply(404, {"error": f"no endpoint GET {self.path}", "definite": True})

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        fields = POST_FIELDS.get(self.path)
        body = self._body()
        if fields is None:
            self._reply(404, {"error": f"no endpoint POST {self.path}", "definite": True})
        elif body is None or not all(f in body for f in fields):
            self._reply(400, {"error": f"POST {self.path} expects a JSON object with {', '.join(fields)}",
                              "definite": True})
        elif self.path == "/add":
            self._reply(*self.backend.add(body["value"]))
        elif self.path == "/generate":
            self._reply(*self.backend.generate(body["request"]))
        else:
            self._reply(*self.backend.register(self.path.removeprefix("/kv/"), body))


def serve(listen: tuple[str, int], store_url: str) -> ThreadingHTTPServer:
    backend = Backend(lambda: RaftClient(store_url, timeout=STORE_TIMEOUT_S))
    handler = type("BoundHandler", (Handler,), {"backend": backend})
    server = ThreadingHTTPServer(listen, handler)
    server.daemon_threads = True
    return server


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitbrain.targets.lb.backend", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT to serve on")
    parser.add_argument("--store", required=True, help="the Raft store's client URL, http://HOST:PORT")
    args = parser.parse_args(argv)
    server = serve(args.listen, args.store)
    print(f"backend on {args.listen[0]}:{args.listen[1]}, store {args.store}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
