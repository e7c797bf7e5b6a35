"""The transactional workloads on PostgreSQL: each txn is one SQL transaction at the target's isolation level.

    BEGIN ISOLATION LEVEL <level> [READ ONLY]
      ["r", k, _]       SELECT vals FROM lists WHERE k = $1          (rw-register: SELECT v FROM registers)
      ["append", k, v]  INSERT INTO lists ... ON CONFLICT (k) DO UPDATE SET vals = lists.vals || EXCLUDED.vals
      ["w", k, v]       INSERT INTO registers ... ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v
    COMMIT

Write txns go to the primary. Read-only txns go to the primary too, unless the target's ``reads`` is
``replicas``: then a client of a replica's node reads there (a hot standby serves no SERIALIZABLE
snapshot, so there it reads at REPEATABLE READ: one consistent, possibly stale, snapshot).

ok / fail / info (splitbrain.Client's rule; never a retry):

- ``fail``: the connection could not be made (nothing sent); any error before COMMIT was sent (the server
  aborts the txn: a statement error, a serialization failure 40001, a lost connection or our timeout --
  without COMMIT it can never commit); COMMIT answered with SQLSTATE class 40 (transaction rollback:
  40001 serialization failure, 40P01 deadlock) on a connection that still works; a read-only txn that
  does not come back ok, whatever happened.
- ``info``: anything else once COMMIT was sent: the connection lost during COMMIT, no answer before the
  timeout, any other error to COMMIT (it may come after the commit record is durable).

libpq has no timeout of its own for a server that stops answering (paused, cut off): a watchdog shuts the
connection's socket down when a txn overruns the client timeout, so the blocked call comes back.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import psycopg
from splitbrain import Op
from splitbrain.targets.postgres.target import ISOLATION_LEVELS, PostgresTarget, conninfo

STATEMENTS = {
    "lists": {"r": "SELECT vals FROM lists WHERE k = %s",
              "append": "INSERT INTO lists AS t (k, vals) VALUES (%s, ARRAY[%s::bigint]) "
                        "ON CONFLICT (k) DO UPDATE SET vals = t.vals || EXCLUDED.vals"},
    "registers": {"r": "SELECT v FROM registers WHERE k = %s",
                  "w": "INSERT INTO registers AS t (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"},
}
TABLE_OF_WORKLOAD = {"list-append": "lists", "rw-register": "registers"}
BIGINT = range(-(2**63), 2**63)


class SocketDeadline:
    """Cuts a connection's socket when the operation on it overruns its deadline (one per client)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._fd: int | None = None
        self._at = 0.0
        self._closed = False
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="postgres-deadline", daemon=True)
        self._thread.start()

    def arm(self, fd: int, timeout_s: float) -> None:
        with self._cond:
            self._fd, self._at, self.fired = fd, time.monotonic() + timeout_s, False
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._fd = None
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._fd is None:
                    self._cond.wait()
                    continue
                left = self._at - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                try:  # through a duplicate: the connection keeps (and later closes) its own descriptor
                    with socket.socket(fileno=os.dup(self._fd)) as s:
                        s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed: the call is coming back anyway
                self._fd, self.fired = None, True


class TxnClient:
    """One worker's connections: to the primary, and to its own replica when reads go to replicas."""

    def __init__(self, target: PostgresTarget, node: str, workload: str, timeout_s: float) -> None:
        self.table = TABLE_OF_WORKLOAD[workload]
        self.timeout_s = timeout_s
        self.isolation = ISOLATION_LEVELS[target.isolation]
        replica = node if target.reads == "replicas" and node != target.primary else None
        self.conninfo = {"primary": conninfo(target.address(target.primary), timeout_s)}
        if replica is not None:
            self.conninfo["replica"] = conninfo(target.address(replica), timeout_s)
        self.read_isolation = "REPEATABLE READ" if replica is not None and target.isolation == "serializable" \
            else self.isolation
        self.connections: dict[str, psycopg.Connection[Any]] = {}
        self.deadline = SocketDeadline()

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f != "txn":
            raise ValueError(f"the transactional workloads have no op {op.f!r}")
        mops = [list(m) for m in op.value]
        if any(m[0] not in STATEMENTS[self.table] or not _bigints(m) for m in mops):
            return op.with_(type="fail", error=f"not sent: {self.table} takes integer keys and values and the "
                                               f"micro-ops {', '.join(STATEMENTS[self.table])}")
        read_only = all(m[0] == "r" for m in mops)
        where = "replica" if read_only and "replica" in self.conninfo else "primary"
        try:
            conn = self._connection(where)
        except psycopg.Error as e:
            return op.with_(type="fail", error=f"not connected: {_first_line(e)}")
        commit_sent = False
        self.deadline.arm(conn.pgconn.socket, self.timeout_s)
        try:
            isolation = self.read_isolation if where == "replica" else self.isolation
            conn.execute(f"BEGIN ISOLATION LEVEL {isolation}{' READ ONLY' if read_only else ''}")
            done = [self._micro_op(conn, m) for m in mops]
            commit_sent = True
            conn.execute("COMMIT")
            return op.with_(type="ok", value=done)
        except psycopg.Error as e:
            timed_out = self.deadline.fired
            self.deadline.disarm()
            rolled_back = (e.sqlstate or "").startswith("40") and not timed_out and not conn.broken
            self._after_error(where, conn)
            why = f"no answer in {self.timeout_s:g} s" if timed_out else _first_line(e)
            if not commit_sent or read_only or rolled_back:
                return op.with_(type="fail", error=f"{e.sqlstate or 'not committed'}: {why}")
            return op.with_(type="info", error=f"during COMMIT: {why}")
        finally:
            self.deadline.disarm()

    def _micro_op(self, conn: psycopg.Connection[Any], mop: list[Any]) -> list[Any]:
        f, k, v = mop
        if f == "r":
            row = conn.execute(STATEMENTS[self.table]["r"], (k,)).fetchone()
            return ["r", k, row[0] if row is not None else None]
        conn.execute(STATEMENTS[self.table][f], (k, v))
        return [f, k, v]

    def _connection(self, where: str) -> psycopg.Connection[Any]:
        conn = self.connections.get(where)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.conninfo[where], autocommit=True)
            self.connections[where] = conn
        return conn

    def _after_error(self, where: str, conn: psycopg.Connection[Any]) -> None:
        """End the aborted txn (ROLLBACK, under the deadline), or drop a connection that cannot be trusted."""
        if not conn.broken and not conn.closed:
            self.deadline.arm(conn.pgconn.socket, self.timeout_s)
            try:
                conn.execute("ROLLBACK")
                return
            except psycopg.Error:
                pass
            finally:
                self.deadline.disarm()
        conn.close()
        self.connections.pop(where, None)

    def close(self, test: Any) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
        self.deadline.close()


def _bigints(mop: list[Any]) -> bool:
    _, k, v = mop
    return all(isinstance(x, int) and not isinstance(x, bool) and x in BIGINT for x in (k, *([v] if v is not None else [])))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
