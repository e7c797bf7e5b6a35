"""Peer-to-peer TCP: length-prefixed JSON frames over asyncio streams.

Each node listens for its peers and keeps one outgoing connection per peer, fed by a bounded queue.
A dead or slow peer never blocks the event loop: connecting and writing run in that peer's own task,
reconnects back off exponentially, and when the queue is full new frames are dropped (Raft retransmits
whatever matters). Frames are JSON objects; the node gives them meaning (Raft messages, forwarded client
requests and their replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 16 * 1024 * 1024
QUEUE_LIMIT = 4096
CONNECT_TIMEOUT_S = 1.0
WRITE_TIMEOUT_S = 2.0
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0

FrameHandler = Callable[[dict[str, Any]], None]


class FrameError(Exception):
    """A peer sent bytes that are not a frame; its connection is closed."""


def encode_frame(frame: dict[str, Any]) -> bytes:
    body = json.dumps(frame, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise FrameError("stream ended inside a frame header") from None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {length} bytes exceeds the maximum")
    body = await reader.readexactly(length)
    try:
        frame = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError(f"frame is not JSON: {e}") from None
    if not isinstance(frame, dict):
        raise FrameError("frame is not a JSON object")
    return frame


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); raises ValueError with a readable message."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@dataclass
class _Peer:
    id: str
    host: str
    port: int
    queue: asyncio.Queue[bytes]
    connected: bool = False
    dropped: int = 0
    task: asyncio.Task[None] | None = None


class PeerTransport:
    """Send frames to peers by id; hand every received frame to ``on_frame``."""

    def __init__(self, self_id: str, listen: tuple[str, int], peers: dict[str, tuple[str, int]],
                 on_frame: FrameHandler) -> None:
        self.self_id = self_id
        self.listen = listen
        self.on_frame = on_frame
        self._peers = {
            pid: _Peer(pid, host, port, asyncio.Queue(QUEUE_LIMIT))
            for pid, (host, port) in peers.items() if pid != self_id
        }
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_inbound, *self.listen)
        for peer in self._peers.values():
            peer.task = asyncio.create_task(self._run_outbound(peer), name=f"peer-{peer.id}")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [p.task for p in self._peers.values() if p.task] + list(self._inbound)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def is_connected(self, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.connected

    def send(self, peer_id: str, frame: dict[str, Any]) -> bool:
        """Queue a frame; False when it was dropped (unknown peer or a full queue)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        try:
            peer.queue.put_nowait(encode_frame(frame))
        except asyncio.QueueFull:
            peer.dropped += 1
            if peer.dropped % 1000 == 1:
                log.warning("queue to %s is full: dropped %d frames so far", peer_id, peer.dropped)
            return False
        return True

    async def _run_outbound(self, peer: _Peer) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(peer.host, peer.port), CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError):
                self._drain_stale(peer)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            log.info("connected to peer %s at %s:%d", peer.id, peer.host, peer.port)
            peer.connected = True
            backoff = BACKOFF_MIN_S
            try:
                await self._pump(peer, writer)
            except (TimeoutError, OSError) as e:
                log.info("connection to peer %s lost: %s", peer.id, e or type(e).__name__)
            finally:
                peer.connected = False
                writer.close()

    @staticmethod
    def _drain_stale(peer: _Peer) -> None:
        """While a peer is unreachable, old frames only delay fresh ones once it is back."""
        while not peer.queue.empty():
            peer.queue.get_nowait()

    @staticmethod
    async def _pump(peer: _Peer, writer: asyncio.StreamWriter) -> None:
        while True:
            chunks = [await peer.queue.get()]
            while not peer.queue.empty():  # batch whatever piled up into one write
                chunks.append(peer.queue.get_nowait())
            writer.write(b"".join(chunks))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

    async def _serve_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inbound.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while (frame := await read_frame(reader)) is not None:
                try:
                    self.on_frame(frame)
                except Exception:  # one bad frame must not take the node down
                    log.exception("error handling a frame from %s", peer)
        except (FrameError, OSError, asyncio.IncompleteReadError) as e:
            log.warning("closing connection from %s: %s", peer, e)
        finally:
            writer.close()
            if task is not None:
                self._inbound.discard(task)
