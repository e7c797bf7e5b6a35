"""The lb target's parts without nodes: the balancer configs, the backend's answers, and the client's
ok / fail / info verdicts (against a scripted HTTP server on loopback)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from splitbrain.control.errors import ConfigError
from splitbrain.histories.op import Op
from splitbrain.targets.lb.backend import Backend, answer_of, last_position
from splitbrain.targets.lb.client import LbClient
from splitbrain.targets.lb.configs import haproxy_config, nginx_config
from splitbrain.targets.lb.target import lb_options
from splitbrain.targets.raft.client import Outcome

BACKENDS = ["10.0.0.2:9000", "10.0.0.3:9000", "10.0.0.4:9000"]


# -- configs --------------------------------------------------------------------------------------------

def test_only_the_unsafe_nginx_config_resends_non_idempotent_requests(tmp_path: Path):
    safe = nginx_config("10.0.0.1:8080", BACKENDS, "safe", tmp_path)
    unsafe = nginx_config("10.0.0.1:8080", BACKENDS, "unsafe", tmp_path)
    assert "proxy_next_upstream error timeout;" in safe and "non_idempotent" not in safe
    assert "proxy_next_upstream error timeout non_idempotent;" in unsafe
    assert all(f"server {b}" in safe for b in BACKENDS)


def test_only_the_unsafe_haproxy_config_retries_after_a_request_was_sent():
    safe = haproxy_config("10.0.0.1:8080", BACKENDS, "safe")
    unsafe = haproxy_config("10.0.0.1:8080", BACKENDS, "unsafe")
    assert "retry-on conn-failure" in safe and "redispatch" not in safe
    assert "retry-on all-retryable-errors" in unsafe and "option redispatch" in unsafe


@pytest.mark.timeout(30)
@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
@pytest.mark.parametrize("retry", ["safe", "unsafe"])
def test_nginx_accepts_the_generated_config(tmp_path: Path, retry: str):
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / sub).mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config("127.0.0.1:1", BACKENDS, retry, tmp_path))
    result = subprocess.run(["/usr/sbin/nginx", "-t", "-c", str(config), "-p", str(tmp_path), "-e", "stderr"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(30)
@pytest.mark.skipif(not Path("/usr/sbin/haproxy").exists(), reason="no haproxy")
@pytest.mark.parametrize("retry", ["safe", "unsafe"])
def test_haproxy_accepts_the_generated_config(tmp_path: Path, retry: str):
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config("127.0.0.1:1", BACKENDS, retry))
    result = subprocess.run(["/usr/sbin/haproxy", "-c", "-f", str(config)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_options_default_to_nginx_safe_and_reject_unknown_values():
    assert lb_options({}) == ("nginx", "safe")
    assert lb_options({"lb": "haproxy", "retry": "unsafe"}) == ("haproxy", "unsafe")
    with pytest.raises(ConfigError, match="lb=envoy: expected one of nginx, haproxy"):
        lb_options({"lb": "envoy"})
    with pytest.raises(ConfigError, match="retry=always"):
        lb_options({"retry": "always"})


# -- the backend ----------------------------------------------------------------------------------------

class FakeStore:
    """The Raft client's append/get with scripted outcomes."""

    def __init__(self, append: Outcome, get: Outcome | None = None) -> None:
        self.append_outcome, self.get_outcome = append, get
        self.appended: list[Any] = []

    def append(self, key: Any, value: Any) -> Outcome:
        self.appended.append((key, value))
        return self.append_outcome

    def get(self, key: Any) -> Outcome:
        assert self.get_outcome is not None
        return self.get_outcome

    def put(self, key: Any, value: Any) -> Outcome:
        return self.append_outcome

    def cas(self, key: Any, old: Any, new: Any) -> Outcome:
        return self.append_outcome

    def close(self) -> None:
        self.closed = True


def backend_with(store: FakeStore) -> Backend:
    return Backend(lambda: store)


def test_the_backend_keeps_the_stores_verdict():
    assert answer_of(Outcome("ok", 3)) == (200, {"value": 3})
    assert answer_of(Outcome("fail", None, "no leader")) == (503, {"error": "no leader", "definite": True})
    assert answer_of(Outcome("info", None, "timeout")) == (500, {"error": "timeout", "definite": False})


def test_generate_answers_its_requests_last_position_in_the_log():
    store = FakeStore(Outcome("ok", [8]), Outcome("ok", [[5], [8], [6], [8]]))
    assert backend_with(store).generate(8) == (200, {"value": 4})
    assert store.appended == [("generated", [8])] and store.closed
    assert last_position([1, 2], 3) is None


def test_generate_applied_but_unreadable_is_indeterminate_not_failed():
    store = FakeStore(Outcome("ok", [8]), Outcome("fail", None, "read timed out"))
    status, body = backend_with(store).generate(8)
    assert status == 500 and body["definite"] is False


def test_an_add_the_store_refused_is_definite_and_reads_of_nothing_are_empty():
    assert backend_with(FakeStore(Outcome("fail", None, "not leader"))).add(1)[1]["definite"] is True
    assert backend_with(FakeStore(Outcome("ok", [1]), Outcome("ok", None))).read_list("set") == (200, {"value": []})


def test_register_operations_keep_the_stores_verdict():
    refused = backend_with(FakeStore(Outcome("fail", None, "cas-mismatch")))
    assert refused.register("cas", {"key": 1, "old": 0, "new": 2}) == (503, {"error": "cas-mismatch", "definite": True})
    lost = backend_with(FakeStore(Outcome("info", None, "timeout")))
    assert lost.register("put", {"key": 1, "value": 2})[1]["definite"] is False
    read = backend_with(FakeStore(Outcome("ok", None), Outcome("ok", 4)))
    assert read.register("get", {"key": 1}) == (200, {"value": 4})


# -- the client -----------------------------------------------------------------------------------------

class Scripted(BaseHTTPRequestHandler):
    """Answers every request with the class's (status, body, delay)."""

    answer: tuple[int, bytes, float] = (200, b"{}", 0.0)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _answer(self) -> None:
        status, body, delay = self.answer
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client gave up waiting, as the timeout tests want

    do_GET = do_POST = _answer  # noqa: N815


@pytest.fixture
def scripted() -> Iterator[tuple[ThreadingHTTPServer, type[Scripted]]]:
    handler = type("Handler", (Scripted,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def invoke(server: ThreadingHTTPServer, workload: str, f: str, value: Any, timeout_s: float = 2.0) -> Op:
    client = LbClient(f"http://127.0.0.1:{server.server_address[1]}", timeout_s, workload)
    return client.invoke(None, Op(0, "invoke", 0, f, value))


CASES = [  # (status, body) -> the add's type, the read's type
    ((200, json.dumps({"value": 1}).encode()), "ok", "fail"),       # a read needs a list
    ((200, json.dumps({"value": [1]}).encode()), "ok", "ok"),
    ((503, json.dumps({"error": "no leader", "definite": True}).encode()), "fail", "fail"),
    ((500, json.dumps({"error": "lost", "definite": False}).encode()), "info", "fail"),
    ((502, b"<html>502 Bad Gateway</html>"), "info", "fail"),
    ((504, b"<html>504 Gateway Time-out</html>"), "info", "fail"),
    ((503, b"<html>No server is available</html>"), "info", "fail"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("answer", "add_type", "read_type"), CASES)
def test_the_client_maps_answers_to_ok_fail_info(scripted, answer, add_type: str, read_type: str):
    server, handler = scripted
    handler.answer = (*answer, 0.0)
    assert invoke(server, "set", "add", 1).type == add_type
    assert invoke(server, "set", "read", None).type == read_type


@pytest.mark.timeout(30)
def test_a_generate_ok_carries_the_id_and_an_add_ok_keeps_its_value(scripted):
    server, handler = scripted
    handler.answer = (200, json.dumps({"value": 42}).encode(), 0.0)
    assert invoke(server, "unique-ids", "generate", 7).value == 42
    assert invoke(server, "set", "add", 7).value == 7


@pytest.mark.timeout(30)
def test_a_timeout_after_sending_is_info_for_writes_and_fail_for_reads(scripted):
    server, handler = scripted
    handler.answer = (200, json.dumps({"value": [1]}).encode(), 0.5)
    assert invoke(server, "set", "add", 1, timeout_s=0.1).type == "info"
    assert invoke(server, "set", "read", None, timeout_s=0.1).type == "fail"


@pytest.mark.timeout(30)
def test_a_refused_connection_is_a_definite_fail():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    op = LbClient(f"http://127.0.0.1:{port}", 1.0, "set").invoke(None, Op(0, "invoke", 0, "add", 1))
    assert op.type == "fail" and "not connected" in op.error


def test_a_run_with_a_bad_lb_option_is_refused_before_anything_starts():
    from splitbrain.targets.lb.spec import spec

    spec().check_options({"lb": "haproxy", "retry": "unsafe"}, 4)
    with pytest.raises(ConfigError, match="retry=maybe"):
        spec().check_options({"retry": "maybe"}, 4)
    with pytest.raises(ConfigError, match="at least 4 nodes"):
        spec().check_options({}, 3)
