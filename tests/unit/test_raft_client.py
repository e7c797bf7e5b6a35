"""How the Raft store's client turns what happened on the wire into ok / fail / info."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from splitbrain.targets.raft.client import Outcome, RaftClient, outcome_of_response


@pytest.mark.parametrize(("code", "body", "expected"), [
    (200, {"value": 3, "node": "n1"}, Outcome("ok", 3)),
    (200, {"value": None}, Outcome("ok", None)),
    (409, {"error": "cas-mismatch", "definite": True, "value": 7}, Outcome("fail", 7, "cas-mismatch")),
    (503, {"error": "no leader", "definite": True}, Outcome("fail", None, "no leader")),
    (504, {"error": "no verdict", "definite": False}, Outcome("info", None, "no verdict")),
    # Not the store's answer (a proxy in between, a broken reply): unknown, never fail.
    (502, None, Outcome("info", None, "unexpected HTTP 502 answer")),
    (503, {"error": "busy"}, Outcome("info", None, "unexpected HTTP 503 answer")),
    (200, {"result": 1}, Outcome("info", None, "unexpected HTTP 200 answer")),
])
def test_outcome_of_response(code: int, body: object, expected: Outcome) -> None:
    assert outcome_of_response(code, body) == expected


def serve_once(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection TCP server on loopback that does ``behaviour`` with the accepted socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            behaviour(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(timeout=5)


def read_request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def silent_server() -> Iterator[int]:
    def never_answer(conn: socket.socket) -> None:
        read_request(conn)
        while conn.recv(65536):  # until the client gives up and closes
            pass

    yield from serve_once(never_answer)


@pytest.fixture
def hanging_up_server() -> Iterator[int]:
    yield from serve_once(lambda conn: (read_request(conn), None)[1])


@pytest.fixture
def proxy_error_server() -> Iterator[int]:
    def bad_gateway(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\nContent-Type: text/html\r\n\r\noops!")

    yield from serve_once(bad_gateway)


@pytest.mark.timeout(20)
def test_a_timeout_after_sending_is_info(silent_server: int) -> None:
    with RaftClient(f"http://127.0.0.1:{silent_server}", timeout=0.3) as c:
        outcome = c.put("k", 1)
    assert outcome.status == "info"
    assert "timed out" in (outcome.error or "")


@pytest.mark.timeout(20)
def test_a_read_that_times_out_is_fail(silent_server: int) -> None:
    with RaftClient(f"http://127.0.0.1:{silent_server}", timeout=0.3) as c:
        assert c.get("k").status == "fail"


@pytest.mark.timeout(20)
def test_a_connection_closed_after_sending_is_info(hanging_up_server: int) -> None:
    with RaftClient(f"127.0.0.1:{hanging_up_server}", timeout=5) as c:
        assert c.cas("k", 1, 2).status == "info"


@pytest.mark.timeout(20)
def test_a_proxy_error_page_is_info(proxy_error_server: int) -> None:
    with RaftClient(f"http://127.0.0.1:{proxy_error_server}", timeout=5) as c:
        outcome = c.acquire("L", "me", 1000)
    assert outcome == Outcome("info", None, "unexpected HTTP 502 answer")


@pytest.mark.timeout(20)
def test_connection_refused_is_fail() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connecting is refused
        with RaftClient(f"http://127.0.0.1:{port}", timeout=5) as c:
            outcome = c.write("k", "v", 3)
    assert outcome.status == "fail"


def test_a_base_url_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a base URL"):
        RaftClient("http://localhost")
