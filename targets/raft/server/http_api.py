"""The client API: a small HTTP/1.1 server on asyncio streams, JSON in and out.

Endpoints (every request body and response body is a JSON object):

    GET  /status                                      {"id","term","role","leader","commit","applied", ...}
    POST /kv/get      {"key"}                         {"value"}            linearizable (ReadIndex)
    POST /kv/put      {"key","value"}                 {"value"}
    POST /kv/cas      {"key","old","new"}             {"value": [old, new]}
    POST /kv/append   {"key","value"}                 {"value"}
    POST /lock/acquire {"lock","owner","ttl_ms"}      {"value": {..., "token"}}
    POST /lock/release {"lock","owner","token"}       {"value": {...}}
    POST /fenced/write {"key","value","token"}        {"value": {...}}
    POST /txn         {"mops": [[f, k, v], ...]}       {"value": mops, reads filled in}   f: r | append | w

Success is 200 ``{"value": ...}``. Every error is ``{"error": text, "definite": bool}``: ``definite``
true means the operation certainly did not take effect (a client records ``fail``), false means it may
have (``info``). A follower forwards requests to its leader; the answer says which node served it.
Keys and values are any JSON, so bodies (not URLs) carry them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from splitbrain.targets.raft.server.transport import cancel_and_wait

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_LINES = 100
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable", 504: "Gateway Timeout"}

# Operation name -> (path, the body fields it requires).
OPERATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "get": ("/kv/get", ("key",)),
    "put": ("/kv/put", ("key", "value")),
    "cas": ("/kv/cas", ("key", "old", "new")),
    "append": ("/kv/append", ("key", "value")),
    "acquire": ("/lock/acquire", ("lock", "owner", "ttl_ms")),
    "release": ("/lock/release", ("lock", "owner", "token")),
    "write": ("/fenced/write", ("key", "value", "token")),
    "txn": ("/txn", ("mops",)),
}
TXN_MICRO_OPS = ("r", "append", "w")
MAX_TXN_MICRO_OPS = 1000


def is_read_only(operation: str, args: dict[str, Any]) -> bool:
    """An operation that changes nothing: a get, or a txn of reads only (its fate never matters)."""
    return operation == "get" or (operation == "txn" and all(m[0] == "r" for m in args["mops"]))
_OPERATION_BY_PATH = {path: (name, fields) for name, (path, fields) in OPERATIONS.items()}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    @classmethod
    def ok(cls, value: Any, **extra: Any) -> Reply:
        return cls(200, {"value": value, **extra})

    @classmethod
    def error(cls, status: int, error: str, *, definite: bool, **extra: Any) -> Reply:
        return cls(status, {"error": error, "definite": definite, **extra})


# The node answers one operation: (name, validated body) -> Reply.
OperationHandler = Callable[[str, dict[str, Any]], Awaitable[Reply]]
StatusHandler = Callable[[], dict[str, Any]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def validate_operation(path: str, body: Any) -> tuple[str, dict[str, Any]]:
    """The operation a POST names, with its body checked; raises BadRequest."""
    found = _OPERATION_BY_PATH.get(path)
    if found is None:
        raise BadRequest(404, f"no endpoint {path}")
    name, fields = found
    if not isinstance(body, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    missing = [f for f in fields if f not in body]
    if missing:
        raise BadRequest(400, f"{path} needs field(s) {', '.join(missing)}")
    if name == "txn":
        _validate_micro_ops(body["mops"])
    for numeric in ("ttl_ms", "token"):
        if numeric in fields and (isinstance(body[numeric], bool) or not isinstance(body[numeric], int)):
            raise BadRequest(400, f"field {numeric!r} must be an integer")
    return name, {f: body[f] for f in fields}


def _validate_micro_ops(mops: Any) -> None:
    if not isinstance(mops, list) or not 1 <= len(mops) <= MAX_TXN_MICRO_OPS:
        raise BadRequest(400, f"field 'mops' must be a list of 1..{MAX_TXN_MICRO_OPS} micro-ops")
    for mop in mops:
        if not isinstance(mop, list) or len(mop) != 3 or mop[0] not in TXN_MICRO_OPS:
            raise BadRequest(400, f"a micro-op is [f, key, value] with f one of {', '.join(TXN_MICRO_OPS)}; "
                                  f"got {json.dumps(mop)}")


async def _read_request(reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, path, headers, body) of the next request, None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest(400, "the connection ended inside the request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "the request head is too large") from None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "malformed request line")
    method, target, _ = parts
    if len(header_lines) > MAX_HEADER_LINES:
        raise BadRequest(431, "too many header lines")
    headers: dict[str, str] = {}
    for raw in header_lines:
        name, sep, value = raw.partition(":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(400, "chunked bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "Content-Length is not a number") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise BadRequest(413, f"body length must be 0..{MAX_BODY_BYTES}")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for this before a large body
    body = await reader.readexactly(length) if length else b""
    path = target.split("?", 1)[0]
    return method.upper(), path, headers, body


def _encode_response(reply: Reply, keep_alive: bool) -> bytes:
    body = json.dumps(reply.body, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + body


class HttpApi:
    """Serve the client API on ``listen`` until ``stop``."""

    def __init__(self, listen: tuple[str, int], on_operation: OperationHandler, on_status: StatusHandler) -> None:
        self.listen = listen
        self.on_operation = on_operation
        self.on_status = on_status
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, *self.listen, limit=MAX_BODY_BYTES + 65536)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(list(self._connections))

    async def _dispatch(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/status":
            if method != "GET":
                raise BadRequest(405, "use GET /status")
            return Reply(200, self.on_status())
        if path not in _OPERATION_BY_PATH:
            raise BadRequest(404, f"no endpoint {path} (see GET /status, POST /kv/get, /kv/put, ...)")
        if method != "POST":
            raise BadRequest(405, f"use POST {path}")
        try:
            decoded = json.loads(body) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(400, f"the body is not JSON: {e}") from None
        name, args = validate_operation(path, decoded)
        return await self.on_operation(name, args)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    request = await _read_request(reader, writer)
                except BadRequest as e:
                    # Nothing was executed: the request never parsed.
                    writer.write(_encode_response(Reply.error(e.status, str(e), definite=True), False))
                    break
                if request is None:
                    break
                method, path, headers, body = request
                keep_alive = headers.get("connection", "").lower() != "close"
                try:
                    reply = await self._dispatch(method, path, body)
                except BadRequest as e:
                    reply = Reply.error(e.status, str(e), definite=True)
                except Exception as e:  # a bug in the node: the operation's fate is unknown
                    log.exception("error serving %s %s", method, path)
                    reply = Reply.error(500, f"internal error: {e}", definite=False)
                writer.write(_encode_response(reply, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away (ValueError: a line longer than the stream limit)
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)
