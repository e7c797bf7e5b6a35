"""Peer-to-peer TCP: length-prefixed JSON frames over asyncio streams.

Each node listens for its peers and keeps one outgoing connection per peer (peers only read what
they accept). A dead or slow peer never blocks the event loop: connecting runs in that peer's own task,
reconnects back off exponentially, and frames for a peer that is not connected or not reading are dropped
(Raft retransmits whatever matters). Frames are JSON objects; the node gives them meaning (Raft messages, forwarded client
requests and their replies).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_BUFFERED_BYTES = 8 * 1024 * 1024
CONNECT_TIMEOUT_S = 1.0
# Data unacknowledged this long (peer partitioned, paused, gone) closes the connection, so the kernel
# drops the backlog and a fresh connection starts clean when the peer is back.
USER_TIMEOUT_MS = 2000
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
STOP_TIMEOUT_S = 2.0

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
    writer: asyncio.StreamWriter | None = None
    unsent: list[bytes] = field(default_factory=list)  # frames of this loop iteration, written together
    flush_scheduled: bool = False
    dropped: int = 0
    task: asyncio.Task[None] | None = None


class PeerTransport:
    """Send frames to peers by id; hand every received frame to ``on_frame``.

    ``send`` never waits: a frame goes out with the others of the same loop iteration in one write,
    or is dropped when the peer is not connected or not reading (Raft retransmits what matters).
    """

    def __init__(self, self_id: str, listen: tuple[str, int], peers: dict[str, tuple[str, int]],
                 on_frame: FrameHandler) -> None:
        self.self_id = self_id
        self.listen = listen
        self.on_frame = on_frame
        self._peers = {pid: _Peer(pid, host, port) for pid, (host, port) in peers.items() if pid != self_id}
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_inbound, *self.listen)
        for peer in self._peers.values():
            peer.task = asyncio.create_task(self._run_outbound(peer), name=f"peer-{peer.id}")

    async def stop(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        await cancel_and_wait([p.task for p in self._peers.values() if p.task] + list(self._inbound))

    def is_connected(self, peer_id: str) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.writer is not None

    def send(self, peer_id: str, frame: dict[str, Any]) -> bool:
        """Hand a frame to the connection; False when it was dropped (unknown, unconnected or stuck peer)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        writer = peer.writer
        if writer is None or writer.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            peer.dropped += 1
            if peer.dropped % 1000 == 1:
                log.warning("peer %s is not connected or not reading: dropped %d frames so far",
                            peer_id, peer.dropped)
            return False
        peer.unsent.append(encode_frame(frame))
        if not peer.flush_scheduled:
            peer.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, peer)
        return True

    @staticmethod
    def _flush(peer: _Peer) -> None:
        peer.flush_scheduled = False
        data, peer.unsent = b"".join(peer.unsent), []
        if peer.writer is not None and data:
            peer.writer.write(data)

    async def _run_outbound(self, peer: _Peer) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closing:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(peer.host, peer.port)
            except (TimeoutError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            _tune_socket(writer)
            log.info("connected to peer %s at %s:%d", peer.id, peer.host, peer.port)
            peer.writer = writer
            backoff = BACKOFF_MIN_S
            try:
                # The peer never writes on this connection: a read returns only when it is gone.
                await reader.read(1)
                log.info("connection to peer %s closed", peer.id)
            except OSError as e:
                log.info("connection to peer %s lost: %s", peer.id, e)
            finally:
                peer.writer = None
                peer.unsent.clear()
                writer.close()

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


def _tune_socket(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Cancel tasks and give them a bounded time to finish: stopping must never hang."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, still_running = await asyncio.wait(pending, timeout=timeout_s)
        for task in still_running:
            log.warning("task %s did not stop within %.1f s", task.get_name(), timeout_s)
