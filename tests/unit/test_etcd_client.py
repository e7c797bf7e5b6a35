"""How the etcd clients turn what happened on the wire into ok / fail / info, against a scripted fake of
etcd's JSON gateway on loopback (no etcd needed): the answers are the shapes etcd 3.4 really sends."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from splitbrain.histories.op import Op, is_fenced_off
from splitbrain.targets.etcd.client import (
    LockClient,
    RegisterClient,
    b64,
    decoded_value,
    encoded_value,
    lease_seconds,
    reply_of_response,
    token_text,
)
from splitbrain.targets.etcd.target import EtcdTarget, leaders_of

TIMEOUT_S = 0.3
HANG = "hang"  # an answer that never comes (within the client's timeout)

Script = dict[str, Any]  # path -> (code, body) | HANG | a callable(body) -> (code, body)


@pytest.fixture
def gateway() -> Iterator[tuple[str, Script, list[tuple[str, Any]]]]:
    """A fake gateway: ``script[path]`` decides the answer; every request is recorded in ``seen``."""
    script: Script = {}
    seen: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            answer = script.get(self.path, (404, {"error": "unscripted", "code": 12}))
            if callable(answer):
                answer = answer(body)
            if answer == HANG:
                time.sleep(TIMEOUT_S * 4)
                return
            code, payload = answer
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script, seen
    finally:
        server.shutdown()
        server.server_close()


def op(f: str, value: Any = None, key: Any = None) -> Op:
    return Op(0, "invoke", 0, f, value, key)


TIMED_OUT = (503, {"error": "etcdserver: request timed out", "message": "etcdserver: request timed out", "code": 14})
FUTURE_REV = (400, {"error": "etcdserver: mvcc: required revision is a future revision", "code": 11})


# -- the mapping of answers ----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "raw", "expected"), [
    (200, b'{"header": {}, "kvs": []}', "ok"),
    (400, b'{"error": "etcdserver: key is not provided", "code": 3}', "fail"),
    (429, b'{"error": "etcdserver: too many requests", "code": 8}', "fail"),
    # Errors that can follow a proposal that still commits: unknown.
    (503, b'{"error": "etcdserver: request timed out", "code": 14}', "info"),
    (503, b'{"error": "etcdserver: leader changed", "code": 14}', "info"),
    (500, b'{"error": "etcdserver: server stopped", "code": 2}', "info"),
    (504, b'{"error": "context deadline exceeded", "code": 4}', "info"),
    # Not etcd's answer: unknown, never fail.
    (502, b"<html>bad gateway</html>", "info"),
    (503, b'{"error": "busy"}', "info"),
    (503, b'{"error": "x", "code": true}', "info"),
    (200, b"[1, 2]", "info"),
])
def test_reply_of_response(code: int, raw: bytes, expected: str) -> None:
    assert reply_of_response(code, raw).status == expected


def test_values_tokens_and_leases_encode_as_etcd_compares_them() -> None:
    assert decoded_value(encoded_value({"b": 1, "a": [2]})) == {"a": [2], "b": 1}
    assert encoded_value(3) == b64("3") and decoded_value(None) is None
    tokens = [0, 7, 10, 99, 1000, 2**62]
    assert sorted(tokens, key=token_text) == tokens  # byte order of the text is numeric order
    with pytest.raises(ValueError):
        token_text(-1)
    assert [lease_seconds(ms) for ms in (1, 999, 1000, 1001, 2500)] == [1, 1, 1, 2, 3]


# -- the transport: nothing sent is fail, sent and unanswered is info ------------------------------------

def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(10)
def test_a_refused_connection_fails_every_op_and_a_read_is_never_info() -> None:
    client = RegisterClient(f"http://127.0.0.1:{unused_port()}", TIMEOUT_S)
    try:
        for f, value in (("write", 1), ("cas", [1, 2]), ("read", None)):
            done = client.invoke(None, op(f, value, key=1))
            assert done.type == "fail" and "not connected" in done.error
    finally:
        client.close(None)


@pytest.mark.timeout(10)
def test_no_answer_after_sending_is_info_for_writes_and_fail_for_reads(gateway) -> None:
    url, script, _ = gateway
    script.update({"/v3/kv/put": HANG, "/v3/kv/txn": HANG, "/v3/kv/range": HANG})
    client = RegisterClient(url, TIMEOUT_S)
    try:
        assert client.invoke(None, op("write", 1, key=1)).type == "info"
        assert client.invoke(None, op("cas", [1, 2], key=1)).type == "info"
        assert client.invoke(None, op("read", None, key=1)).type == "fail"
    finally:
        client.close(None)


# -- the register ---------------------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_register_ops_on_the_wire(gateway) -> None:
    url, script, seen = gateway
    script["/v3/kv/range"] = (200, {"header": {"revision": "5"}, "kvs": [{"key": b64("register/1"),
                                                                          "value": encoded_value(4)}]})
    script["/v3/kv/put"] = (200, {"header": {"revision": "6"}})
    client = RegisterClient(url, TIMEOUT_S, serializable=True)
    try:
        assert client.invoke(None, op("read", None, key=1)) == op("read", 4, key=1).with_(type="ok")
        assert seen[-1] == ("/v3/kv/range", {"key": b64("register/1"), "serializable": True})
        assert client.invoke(None, op("write", 2, key=1)).type == "ok"
        assert seen[-1] == ("/v3/kv/put", {"key": b64("register/1"), "value": encoded_value(2)})
        script["/v3/kv/range"] = (200, {"header": {"revision": "5"}})  # etcd leaves out an empty kvs
        assert client.invoke(None, op("read", None, key=7)).value is None
    finally:
        client.close(None)


@pytest.mark.timeout(10)
def test_cas_is_ok_only_when_the_compare_held(gateway) -> None:
    url, script, seen = gateway
    client = RegisterClient(url, TIMEOUT_S)
    try:
        script["/v3/kv/txn"] = (200, {"header": {}, "succeeded": True, "responses": [{"response_put": {}}]})
        assert client.invoke(None, op("cas", [1, 2], key=3)).type == "ok"
        compare = seen[-1][1]["compare"][0]
        assert compare == {"key": b64("register/3"), "target": "VALUE", "result": "EQUAL", "value": encoded_value(1)}
        script["/v3/kv/txn"] = (200, {"header": {}})  # succeeded false is left out of the JSON
        assert client.invoke(None, op("cas", [1, 2], key=3)).type == "fail"
        script["/v3/kv/txn"] = TIMED_OUT
        assert client.invoke(None, op("cas", [1, 2], key=3)).type == "info"
    finally:
        client.close(None)


# -- the lock -------------------------------------------------------------------------------------------

ACQUIRE = {"lock": "l", "owner": "client-0", "ttl_ms": 1000}
LOCK_KEY = b64("lock/l/7")


def lock_script(script: Script, *, kvs: list[dict[str, Any]] | None = None) -> None:
    script["/v3/lease/grant"] = (200, {"header": {}, "ID": "7", "TTL": "1"})
    script["/v3/lock/lock"] = (200, {"header": {"revision": "12"}, "key": LOCK_KEY})
    held = [{"key": LOCK_KEY, "create_revision": "11", "mod_revision": "11", "lease": "7"}]
    script["/v3/kv/range"] = (200, {"header": {}, "kvs": held if kvs is None else kvs})


@pytest.mark.timeout(10)
def test_acquire_takes_the_lock_keys_create_revision_as_token_and_release_unlocks_that_key(gateway) -> None:
    url, script, seen = gateway
    lock_script(script)
    script["/v3/lock/unlock"] = (200, {"header": {}})
    client = LockClient(url, TIMEOUT_S)
    try:
        done = client.invoke(None, op("acquire", ACQUIRE))
        assert done.type == "ok" and done.value == {**ACQUIRE, "token": 11}
        assert [p for p, _ in seen] == ["/v3/lease/grant", "/v3/lock/lock", "/v3/kv/range"]
        assert seen[0][1] == {"TTL": 1} and seen[1][1] == {"name": b64("lock/l"), "lease": "7"}
        released = client.invoke(None, op("release", {"lock": "l", "owner": "client-0", "token": 11}))
        assert released.type == "ok" and seen[-1] == ("/v3/lock/unlock", {"key": LOCK_KEY})
        # A token this client holds no key for: nothing is sent, so it certainly did not happen.
        again = client.invoke(None, op("release", {"lock": "l", "owner": "client-0", "token": 11}))
        assert again.type == "fail" and seen[-1][0] == "/v3/lock/unlock" and len(seen) == 4
    finally:
        client.close(None)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("path", "answer", "expected"), [
    ("/v3/lease/grant", HANG, "fail"),        # a lease alone holds nothing
    ("/v3/lease/grant", TIMED_OUT, "fail"),
    ("/v3/lock/lock", HANG, "info"),          # it may have taken the lock server-side
    ("/v3/lock/lock", FUTURE_REV, "info"),    # the lock call is several steps: only "not sent" is definite
    ("/v3/kv/range", HANG, "info"),           # granted, token unknown
])
def test_acquire_outcomes(gateway, path: str, answer: Any, expected: str) -> None:
    url, script, _ = gateway
    lock_script(script)
    script[path] = answer
    client = LockClient(url, TIMEOUT_S)
    try:
        assert client.invoke(None, op("acquire", ACQUIRE)).type == expected
    finally:
        client.close(None)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kvs", [[], [{"key": LOCK_KEY, "create_revision": "11", "lease": "8"}]])
def test_a_grant_whose_key_is_gone_is_info_not_ok(gateway, kvs: list[dict[str, Any]]) -> None:
    """etcd's lock answers ok even when the waiter's lease ran out while it waited (its key deleted):
    such a client holds nothing, and must not get a token."""
    url, script, _ = gateway
    lock_script(script, kvs=kvs)
    client = LockClient(url, TIMEOUT_S)
    try:
        done = client.invoke(None, op("acquire", ACQUIRE))
        assert done.type == "info" and "gone" in done.error
    finally:
        client.close(None)


def fence(stored: list[str]) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    """A fake fence key with etcd's txn semantics for the one compare the client sends."""

    def txn(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        (cmp,) = body["compare"]
        assert cmp["target"] == "VALUE" and cmp["result"] == "GREATER"
        # A value compare on a missing key is false in etcd: the else branch runs.
        greater = bool(stored) and stored[-1].encode() > base64_decode(cmp["value"])
        if greater:
            return 200, {"header": {}, "succeeded": True}
        stored.append(base64_decode(body["failure"][0]["request_put"]["value"]).decode())
        return 200, {"header": {}, "responses": [{"response_put": {}} for _ in body["failure"]]}

    return txn


def base64_decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


@pytest.mark.timeout(10)
def test_the_fenced_resource_accepts_a_token_no_older_than_the_stored_one(gateway) -> None:
    url, script, _ = gateway
    stored: list[str] = []
    script["/v3/kv/txn"] = fence(stored)
    client = LockClient(url, TIMEOUT_S)
    try:
        def write(token: int) -> Op:
            return client.invoke(None, op("write", {"key": "fenced", "value": f"v{token}", "token": token}))

        assert write(9).type == "ok"       # no fence key yet
        assert write(9).type == "ok"       # the same holder again
        assert write(100).type == "ok"     # 100 > 9 numerically, though "100" < "9" as text
        stale = write(11)
        assert stale.type == "fail" and is_fenced_off(stale.error)  # the lock workload drops the token on it
        assert [int(t) for t in stored] == [9, 9, 100]
        script["/v3/kv/txn"] = TIMED_OUT
        assert write(100).type == "info"
    finally:
        client.close(None)


# -- the target's view of the cluster -------------------------------------------------------------------

def status(member: str, leader: str, term: int) -> dict[str, Any]:
    return {"header": {"member_id": member, "raft_term": str(term)}, "leader": leader, "raftTerm": str(term)}


def test_primaries_are_the_self_declared_leaders_of_the_highest_term() -> None:
    assert leaders_of({"n1": status("1", "1", 2), "n2": status("2", "1", 2), "n3": None}) == ["n1"]
    # A deposed leader still in its old term is not a primary; nor is anyone while nobody leads.
    assert leaders_of({"n1": status("1", "1", 2), "n2": status("2", "2", 3), "n3": status("3", "2", 3)}) == ["n2"]
    assert leaders_of({"n1": status("1", "0", 4), "n2": status("2", "0", 4)}) == []
    assert leaders_of({"n1": None}) == []


def test_each_member_listens_on_its_own_address_and_keeps_its_data_under_the_run() -> None:
    target = EtcdTarget({"node1": "10.9.0.1", "node2": "10.9.0.2"}, "/runs/x/data", lambda *a: None)
    argv = target.command("node2")
    assert argv[0] == "/usr/bin/etcd"  # the server itself: kill, pause and clock skew reach it
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert flags["--listen-client-urls"] == "http://10.9.0.2:2379"
    assert flags["--listen-peer-urls"] == "http://10.9.0.2:2380"
    assert flags["--data-dir"] == "/runs/x/data/node2"
    assert flags["--initial-cluster"] == "node1=http://10.9.0.1:2380,node2=http://10.9.0.2:2380"
    with pytest.raises(ValueError):
        EtcdTarget({}, "/tmp", lambda *a: None, read="stale")


def test_members_are_started_without_the_harness_proxy_settings() -> None:
    """Go's HTTP transport honours HTTP_PROXY: inherited, it would route member-to-member traffic (and
    the gateway's own gRPC calls) to a proxy, and the cluster would never form."""
    started: list[tuple] = []
    target = EtcdTarget({"node1": "10.9.0.1"}, "/runs/x/data",
                        lambda node, argv, env, log: started.append((node, argv, env, log)) or object())
    target.start(None, "node1")
    (node, argv, env, log), = started
    assert node == "node1" and log == "etcd.log" and argv == target.command("node1")
    assert env["HTTP_PROXY"] == env["https_proxy"] == env["grpc_proxy"] == ""


def test_a_bad_read_mode_or_option_is_one_line_before_anything_starts(tmp_path, capsys) -> None:
    from splitbrain.harness.cli import main

    assert main(["run", "--target", "etcd", "--read", "stale", "--store", str(tmp_path)]) == 3
    assert main(["run", "--target", "etcd", "--target-opt", "pre_vote=1", "--store", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "linearizable, serializable" in err and "pre_vote" in err
    assert err.count("error:") == 2 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # no run directory: nothing started
