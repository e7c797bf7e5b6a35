"""ZooKeeper target without servers: which kazoo errors are fail and which info, how each register and
fenced-write op maps onto requests, the ensemble's configuration and the target's options."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from splitbrain.control.errors import ConfigError
from splitbrain.histories.op import Op, is_fenced_off
from splitbrain.targets.zookeeper import client as zc
from splitbrain.targets.zookeeper.spec import spec
from splitbrain.targets.zookeeper.target import server_mode, zoo_cfg


class Answer:
    """A kazoo async result that is already decided."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    def get(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class FakeZk:
    """Answers requests from a script of (method, answer) and records what was sent."""

    def __init__(self, script: list[tuple[str, Answer]]) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, tuple, dict]] = []

    def _request(self, method: str, *args: Any, **kwargs: Any) -> Answer:
        self.sent.append((method, args, kwargs))
        expected, answer = self.script.pop(0)
        assert expected == method, f"sent {method}, the script expected {expected}"
        return answer

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_async"):
            return lambda *a, **k: self._request(name[:-len("_async")], *a, **k)
        raise AttributeError(name)


def register_client(script: list[tuple[str, Answer]], read: str = "sync") -> tuple[zc.RegisterClient, FakeZk]:
    client = zc.RegisterClient.__new__(zc.RegisterClient)
    client.hosts, client.timeout_s, client.read_mode = "x:2181", 1.0, read
    client.zk = FakeZk(script)
    return client, client.zk


def invoke(client: Any, f: str, value: Any, key: Any = 1) -> Op:
    return client.invoke(None, Op(index=0, type="invoke", process=0, f=f, key=key, value=value))


def data(v: Any, version: int = 0) -> Answer:
    return Answer((json.dumps(v).encode(), SimpleNamespace(version=version)))


@pytest.mark.parametrize("error, expected", [
    (NoNodeError(), "fail"), (NodeExistsError(), "fail"), (BadVersionError(), "fail"),
    (SessionExpiredError(), "fail"), (ConnectionClosedError("closed"), "fail"), (zc.OutOfTime(), "fail"),
    (ConnectionLoss(), "info"), (OperationTimeoutError(), "info"), (KazooTimeoutError(), "info"),
    (RuntimeError("unexpected"), "info"),
])
def test_a_write_is_fail_only_when_it_definitely_did_not_happen(error: BaseException, expected: str) -> None:
    op = Op(index=0, type="invoke", process=0, f="write", key=1, value=3)
    assert zc.completion_for_error(op, error).type == expected


def test_a_read_that_errs_is_fail_since_reads_change_nothing() -> None:
    op = Op(index=0, type="invoke", process=0, f="read", key=1, value=None)
    assert zc.completion_for_error(op, ConnectionLoss()).type == "fail"


def test_sync_read_syncs_before_the_get_and_a_missing_znode_reads_null() -> None:
    client, zk = register_client([("sync", Answer("/")), ("get", Answer(error=NoNodeError()))])
    done = invoke(client, "read", None)
    assert (done.type, done.value) == ("ok", None)
    assert [m for m, _, _ in zk.sent] == ["sync", "get"]


def test_a_read_whose_sync_fails_is_not_ok() -> None:
    client, _ = register_client([("sync", Answer(error=ConnectionLoss())), ("get", data(4))])
    assert invoke(client, "read", None).type == "fail"


def test_local_read_is_a_plain_get() -> None:
    client, zk = register_client([("get", data(4))], read="local")
    assert invoke(client, "read", None).value == 4
    assert [m for m, _, _ in zk.sent] == ["get"]


def test_first_write_creates_the_znode_after_a_definite_no_node() -> None:
    client, zk = register_client([("set", Answer(error=NoNodeError())), ("create", Answer("/p"))])
    assert invoke(client, "write", 2).type == "ok"
    assert zk.sent[1][1] == ("/splitbrain/register/1", b"2")


def test_a_write_whose_answer_is_lost_is_info() -> None:
    client, _ = register_client([("set", Answer(error=ConnectionLoss()))])
    assert invoke(client, "write", 2).type == "info"


def test_cas_sets_with_the_version_it_read() -> None:
    client, zk = register_client([("get", data(1, version=7)), ("set", Answer())])
    assert invoke(client, "cas", [1, 2]).type == "ok"
    method, args, kwargs = zk.sent[1]
    assert args == ("/splitbrain/register/1", b"2") and kwargs == {"version": 7}


@pytest.mark.parametrize("script", [
    [("get", data(3))],                                           # another value: nothing sent
    [("get", Answer(error=NoNodeError()))],                       # no value at all
    [("get", data(1, version=7)), ("set", Answer(error=BadVersionError()))],  # written meanwhile
])
def test_cas_that_cannot_apply_is_fail(script: list) -> None:
    client, zk = register_client(script)
    assert invoke(client, "cas", [1, 2]).type == "fail"
    assert zk.script == []


def test_cas_whose_versioned_set_is_lost_is_info() -> None:
    client, _ = register_client([("get", data(1)), ("set", Answer(error=ConnectionLoss()))])
    assert invoke(client, "cas", [1, 2]).type == "info"


def lock_client(script: list[tuple[str, Answer]]) -> tuple[zc.LockClient, FakeZk]:
    client = zc.LockClient.__new__(zc.LockClient)
    client.hosts, client.timeout_s, client.held = "x:2181", 1.0, {}
    client.zk = FakeZk(script)
    return client, client.zk


def fenced(token: int) -> dict:
    return {"key": "fenced", "value": "v", "token": token}


def test_fenced_write_refuses_an_older_token_as_stale() -> None:
    client, zk = lock_client([("get", data({"token": 9, "value": "x"}))])
    done = invoke(client, "write", fenced(5), key=None)
    assert done.type == "fail" and is_fenced_off(done.error) and "stale token" in done.error["message"]
    assert len(zk.sent) == 1


def test_fenced_write_sets_with_the_version_it_read() -> None:
    client, zk = lock_client([("get", data({"token": 5, "value": "x"}, version=3)), ("set", Answer())])
    assert invoke(client, "write", fenced(5), key=None).type == "ok"
    assert zk.sent[1][2] == {"version": 3}
    assert json.loads(zk.sent[1][1][1]) == {"token": 5, "value": "v"}


def test_release_of_a_token_this_client_does_not_hold_sends_nothing() -> None:
    client, zk = lock_client([])
    done = invoke(client, "release", {"lock": "l", "owner": "c", "token": 4}, key=None)
    assert done.type == "fail" and zk.sent == []


def test_token_is_the_lock_nodes_sequence_number() -> None:
    assert zc.token_of("0f3a__lock__0000000042") == 42


def test_zoo_cfg_names_every_server_in_sorted_order(tmp_path: Path) -> None:
    addresses = {"node2": "10.0.0.2", "node1": "10.0.0.1", "node3": "10.0.0.3"}
    cfg = zoo_cfg("node2", addresses, tmp_path, 200)
    assert "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2888:3888" in cfg
    assert "clientPortAddress=10.0.0.2" in cfg and "tickTime=200" in cfg and "admin.enableServer=false" in cfg


def test_server_mode_from_srvr() -> None:
    assert server_mode("Zookeeper version: 3.8.0\nMode: leader\nNode count: 5\n") == "leader"
    assert server_mode("This ZooKeeper instance is not currently serving requests\n") is None
    assert server_mode(None) is None


@pytest.mark.parametrize("opts", [{"read": "linearizable"}, {"tick_ms": "fast"}, {"tick_ms": "5"}, {"ttl": "1"}])
def test_bad_options_are_refused_before_the_run(opts: dict) -> None:
    with pytest.raises(ConfigError):
        spec().check_options(opts, 3)


def test_good_options_pass() -> None:
    spec().check_options({"read": "local", "tick_ms": "300"}, 3)


class FakeLockZk(FakeZk):
    def __init__(self, script: list[tuple[str, Answer]]) -> None:
        super().__init__(script)
        from kazoo.handlers.threading import SequentialThreadingHandler

        self.handler = SequentialThreadingHandler()

    def _request(self, method: str, *args: Any, **kwargs: Any) -> Answer:
        answer = super()._request(method, *args, **kwargs)
        if method == "create" and answer.error is None:  # the node the recipe asked for, with a sequence
            self.created = args[0].rsplit("/", 1)[1] + answer.value
            return Answer(args[0] + answer.value)
        if method == "get_children" and answer.error is None:  # "ours" stands for the node created
            return Answer([self.created if c == "ours" else c for c in answer.value])
        return answer


def acquire(script: list[tuple[str, Answer]]) -> tuple[Op, zc.LockClient, list[str]]:
    client, _ = lock_client([])
    client.zk = FakeLockZk(script)
    renewed: list[str] = []
    client.renew_session = lambda: renewed.append("renewed")  # type: ignore[method-assign]
    done = invoke(client, "acquire", {"lock": "l", "owner": "client-0", "ttl_ms": 1000}, key=None)
    return done, client, renewed


def test_acquire_first_in_line_is_ok_with_the_nodes_sequence_as_token() -> None:
    done, client, _ = acquire([("ensure_path", Answer(True)),
                               ("create", Answer("0000000007")),
                               ("get_children", Answer(["ours", "zzz__lock__0000000009"]))])
    assert (done.type, done.value["token"]) == ("ok", 7)
    assert 7 in client.held


def test_acquire_behind_another_owner_removes_its_node_and_fails() -> None:
    done, _, renewed = acquire([("ensure_path", Answer(True)),
                                ("create", Answer("0000000008")),
                                ("get_children", Answer(["ours", "zzz__lock__0000000003"])),
                                ("delete", Answer(True))])
    assert done.type == "fail" and renewed == []


def test_acquire_whose_create_answer_is_lost_is_info_and_ends_the_session() -> None:
    done, _, renewed = acquire([("ensure_path", Answer(True)), ("create", Answer(error=ConnectionLoss())),
                                ("get_children", Answer(error=ConnectionLoss()))])
    assert done.type == "info" and renewed == ["renewed"]


def test_acquire_refused_before_its_node_was_created_is_fail() -> None:
    done, _, renewed = acquire([("ensure_path", Answer(error=SessionExpiredError()))])
    assert done.type == "fail" and renewed == []


def test_cli_refuses_a_bad_read_mode_in_one_line_before_anything_starts(tmp_path: Path, capsys) -> None:
    from splitbrain.harness.cli import main

    code = main(["run", "--target", "zookeeper", "--nodes", "3", "--read", "eventual", "--store", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and "sync or local" in err
    assert not any(tmp_path.iterdir())  # no run directory: nothing started
