"""Peer transport: frames between two in-process transports on loopback, reconnects, bad input."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
from splitbrain.targets.raft.server.transport import PeerTransport, encode_frame, parse_address

pytestmark = pytest.mark.timeout(20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def __call__(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self.arrived.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        while len(self.frames) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)
        return self.frames


def pair(ports: dict[str, int], inbox_a: Inbox, inbox_b: Inbox) -> tuple[PeerTransport, PeerTransport]:
    peers = {name: ("127.0.0.1", port) for name, port in ports.items()}
    return (PeerTransport("a", peers["a"], peers, inbox_a), PeerTransport("b", peers["b"], peers, inbox_b))


async def until_connected(transport: PeerTransport, peer: str) -> None:
    while not transport.is_connected(peer):
        await asyncio.sleep(0.01)


def test_frames_arrive_in_order_both_ways() -> None:
    async def scenario() -> tuple[list, list]:
        inbox_a, inbox_b = Inbox(), Inbox()
        a, b = pair({"a": free_port(), "b": free_port()}, inbox_a, inbox_b)
        await a.start()
        await b.start()
        try:
            await until_connected(a, "b")
            await until_connected(b, "a")
            for i in range(100):
                assert a.send("b", {"n": i})
            assert b.send("a", {"reply": True})
            return await inbox_b.wait_for(100), await inbox_a.wait_for(1)
        finally:
            await a.stop()
            await b.stop()

    to_b, to_a = asyncio.run(scenario())
    assert to_b == [{"n": i} for i in range(100)]
    assert to_a == [{"reply": True}]


def test_sending_to_an_unknown_or_absent_peer_drops_without_blocking() -> None:
    async def scenario() -> tuple[bool, bool]:
        a, _ = pair({"a": free_port(), "b": free_port()}, Inbox(), Inbox())
        await a.start()  # b never starts
        try:
            return a.send("b", {"x": 1}), a.send("nobody", {"x": 1})
        finally:
            await a.stop()

    assert asyncio.run(scenario()) == (False, False)


def test_the_connection_comes_back_when_a_peer_restarts() -> None:
    async def scenario() -> list[dict[str, Any]]:
        ports = {"a": free_port(), "b": free_port()}
        inbox_b = Inbox()
        a, b = pair(ports, Inbox(), inbox_b)
        await a.start()
        await b.start()
        await until_connected(a, "b")
        await b.stop()
        while a.is_connected("b"):
            await asyncio.sleep(0.01)
        inbox_b2 = Inbox()
        _, b2 = pair(ports, Inbox(), inbox_b2)
        await b2.start()
        try:
            await until_connected(a, "b")  # reconnected by a's backoff loop
            a.send("b", {"after": "restart"})
            return await inbox_b2.wait_for(1)
        finally:
            await a.stop()
            await b2.stop()

    assert asyncio.run(scenario()) == [{"after": "restart"}]


@pytest.mark.parametrize("garbage", [
    struct.pack(">I", 5) + b"nope!",  # not JSON
    struct.pack(">I", 3) + b"[1]",  # JSON, not an object
    struct.pack(">I", 0xFFFFFFF0),  # absurd length
])
def test_a_malformed_frame_closes_that_connection_and_the_node_keeps_serving(garbage: bytes) -> None:
    async def scenario() -> list[dict[str, Any]]:
        inbox = Inbox()
        port = free_port()
        b = PeerTransport("b", ("127.0.0.1", port), {"b": ("127.0.0.1", port)}, inbox)
        await b.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by b
            writer.close()
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_frame({"still": "serving"}))
            await writer.drain()
            frames = await inbox.wait_for(1)
            writer.close()
            return frames
        finally:
            await b.stop()

    assert asyncio.run(scenario()) == [{"still": "serving"}]


@pytest.mark.parametrize(("text", "expected"), [("127.0.0.1:7001", ("127.0.0.1", 7001)), ("[::1]:80", ("::1", 80))])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["7001", "host:", ":80", "host:0", "host:70000", "host:x"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_address(text)
