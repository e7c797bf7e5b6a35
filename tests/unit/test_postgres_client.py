"""The postgres client's ok / fail / info: fail only for a txn that certainly did not commit, info once
COMMIT was sent and its answer is lost, and never a second try of a txn (a fake connection, no server)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from splitbrain import Op
from splitbrain.targets.postgres.client import TxnClient


class FakeConnection:
    """Answers reads with ``rows``; raises ``errors[statement prefix]`` (once) and then is broken if asked."""

    def __init__(self, errors: dict[str, Exception] | None = None, breaks: bool = False) -> None:
        self._pair = socket.socketpair()
        self.pgconn = SimpleNamespace(socket=self._pair[0].fileno())
        self.errors = dict(errors or {})
        self.breaks = breaks
        self.broken = self.closed = False
        self.sent: list[str] = []

    def execute(self, sql: str, params: Any = None) -> Any:
        self.sent.append(sql.split()[0])
        for prefix, error in list(self.errors.items()):
            if sql.startswith(prefix):
                del self.errors[prefix]
                self.broken = self.breaks
                raise error
        return SimpleNamespace(fetchone=lambda: ([7],) if sql.startswith("SELECT") else None)

    def close(self) -> None:
        self.closed = True
        for s in self._pair:
            s.close()


@pytest.fixture
def client() -> Iterator[TxnClient]:
    target = SimpleNamespace(isolation="serializable", reads="primary", primary="node1", address=lambda n: "10.0.0.1")
    c = TxnClient(target, "node1", "list-append", 1.0)  # type: ignore[arg-type]
    yield c
    c.close(None)


def txn(*mops: list[Any]) -> Op:
    return Op(0, "invoke", 0, "txn", [list(m) for m in mops])


def with_connection(client: TxnClient, conn: FakeConnection) -> None:
    client.connections["primary"] = conn  # type: ignore[assignment]


def lost() -> psycopg.OperationalError:
    return psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_committed_txn_is_ok_with_its_reads(client: TxnClient) -> None:
    conn = FakeConnection()
    with_connection(client, conn)
    done = client.invoke(None, txn(["append", 1, 5], ["r", 1, None]))
    assert done.type == "ok" and done.value == [["append", 1, 5], ["r", 1, [7]]]
    assert conn.sent == ["BEGIN", "INSERT", "SELECT", "COMMIT"]


def test_a_serialization_failure_at_commit_is_fail_and_not_retried(client: TxnClient) -> None:
    conn = FakeConnection({"COMMIT": psycopg.errors.SerializationFailure("could not serialize access")})
    with_connection(client, conn)
    done = client.invoke(None, txn(["append", 1, 5]))
    assert done.type == "fail" and done.error.startswith("40001")
    assert conn.sent.count("COMMIT") == 1 and conn.sent[-1] == "ROLLBACK"


def test_a_connection_lost_during_commit_is_info_and_not_retried(client: TxnClient) -> None:
    conn = FakeConnection({"COMMIT": lost()}, breaks=True)
    with_connection(client, conn)
    done = client.invoke(None, txn(["append", 1, 5]))
    assert done.type == "info" and "during COMMIT" in done.error
    assert conn.sent.count("COMMIT") == 1 and conn.closed  # dropped, not reused


def test_a_connection_lost_before_commit_is_fail(client: TxnClient) -> None:
    conn = FakeConnection({"INSERT": lost()}, breaks=True)
    with_connection(client, conn)
    done = client.invoke(None, txn(["append", 1, 5], ["append", 2, 6]))
    assert done.type == "fail" and "COMMIT" not in conn.sent


def test_a_40001_on_a_connection_that_then_broke_is_info(client: TxnClient) -> None:
    """The answer came, but the connection is gone: we cannot be sure the abort was final."""
    conn = FakeConnection({"COMMIT": psycopg.errors.SerializationFailure("could not serialize")}, breaks=True)
    with_connection(client, conn)
    assert client.invoke(None, txn(["append", 1, 5])).type == "info"


def test_a_read_only_txn_that_loses_its_commit_is_fail(client: TxnClient) -> None:
    """It wrote nothing: dropping it loses no effect the checker must allow for."""
    conn = FakeConnection({"COMMIT": lost()}, breaks=True)
    with_connection(client, conn)
    assert client.invoke(None, txn(["r", 1, None])).type == "fail"


def test_no_connection_is_fail(client: TxnClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(psycopg, "connect", refuse)
    done = client.invoke(None, txn(["append", 1, 5]))
    assert done.type == "fail" and done.error.startswith("not connected")


def test_a_value_postgres_cannot_store_is_fail_and_never_sent(client: TxnClient) -> None:
    conn = FakeConnection()
    with_connection(client, conn)
    assert client.invoke(None, txn(["append", 1, 2**64])).type == "fail"
    assert conn.sent == []
