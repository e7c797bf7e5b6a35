"""The Raft server's HTTP layer, in process: routing, validation, keep-alive, error definiteness."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from splitbrain.targets.raft.server.http_api import HttpApi, Reply

pytestmark = pytest.mark.timeout(20)


async def start_api(on_operation) -> tuple[HttpApi, int]:  # type: ignore[no-untyped-def]
    api = HttpApi(("127.0.0.1", 0), on_operation, lambda: {"id": "n1", "role": "leader"})
    await api.start()
    assert api._server is not None
    return api, api._server.sockets[0].getsockname()[1]


async def exchange(port: int, raw_requests: bytes, responses: int) -> list[tuple[int, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw_requests)
    await writer.drain()
    answers = []
    for _ in range(responses):
        status_line = await reader.readline()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        answers.append((int(status_line.split()[1]), json.loads(body)))
    writer.close()
    return answers


def post(path: str, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_operations_reach_the_node_with_validated_fields_over_one_connection() -> None:
    seen: list[tuple[str, dict]] = []

    async def on_operation(name: str, args: dict[str, Any]) -> Reply:
        seen.append((name, args))
        return Reply.ok(args.get("value"))

    async def scenario() -> list[tuple[int, Any]]:
        api, port = await start_api(on_operation)
        try:
            requests = (post("/kv/put", b'{"key": 1, "value": [1, 2], "extra": 0}')
                        + post("/kv/cas", b'{"key": "k", "old": null, "new": 3}')
                        + b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            return await exchange(port, requests, 3)
        finally:
            await api.stop()

    answers = run(scenario())
    assert answers == [(200, {"value": [1, 2]}), (200, {"value": None}), (200, {"id": "n1", "role": "leader"})]
    # Keys keep their JSON type; fields an endpoint does not take are not passed on.
    assert seen == [("put", {"key": 1, "value": [1, 2]}), ("cas", {"key": "k", "old": None, "new": 3})]


@pytest.mark.parametrize(("request_bytes", "status", "fragment"), [
    (post("/kv/put", b'{"key": 1}'), 400, "needs field(s) value"),
    (post("/kv/put", b"not json"), 400, "not JSON"),
    (post("/kv/put", b"[1, 2]"), 400, "must be a JSON object"),
    (post("/lock/acquire", b'{"lock": "L", "owner": "o", "ttl_ms": "soon"}'), 400, "'ttl_ms' must be an integer"),
    (post("/nowhere", b"{}"), 404, "no endpoint /nowhere"),
    (b"GET /kv/put HTTP/1.1\r\n\r\n", 405, "use POST /kv/put"),
    (b"BROKEN\r\n\r\n", 400, "malformed request line"),
])
def test_requests_that_never_ran_are_definite_errors(request_bytes: bytes, status: int, fragment: str) -> None:
    async def never_called(name: str, args: dict[str, Any]) -> Reply:
        raise AssertionError("an invalid request reached the node")

    async def scenario() -> list[tuple[int, Any]]:
        api, port = await start_api(never_called)
        try:
            return await exchange(port, request_bytes, 1)
        finally:
            await api.stop()

    [(got_status, body)] = run(scenario())
    assert got_status == status
    assert body["definite"] is True and fragment in body["error"]


def test_a_crash_inside_the_node_is_an_indefinite_error() -> None:
    async def broken(name: str, args: dict[str, Any]) -> Reply:
        raise RuntimeError("boom")

    async def scenario() -> list[tuple[int, Any]]:
        api, port = await start_api(broken)
        try:
            return await exchange(port, post("/kv/append", b'{"key": "k", "value": 1}'), 1)
        finally:
            await api.stop()

    [(status, body)] = run(scenario())
    assert status == 500 and body["definite"] is False
