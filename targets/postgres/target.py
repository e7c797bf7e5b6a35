"""PostgreSQL 15 (Debian's postgresql-15) as a target: node1 the primary, every other node an asynchronous
streaming replica of it. Written only against splitbrain's public API, as a plugin would be.

Each server is ``/usr/lib/postgresql/15/bin/postgres`` started through the run's spawner (so kill and
pause reach it through its node's cgroup), its data in ``data_root/<node>/pgdata``. PostgreSQL refuses to
run as root, so every program of it (initdb, pg_basebackup, postgres) runs as the ``postgres`` user the
package creates, through ``setpriv`` (which execs it: the spawned process *is* the server). That user
must be able to reach the run's directory: a store under a directory closed to other users (a 0700
home, pytest's temporary folders) is refused in one line at set-up.

Set-up: the primary runs initdb (trust authentication: the nodes are the run's own) and starts; each
replica waits for it, copies it with ``pg_basebackup -R`` (which writes standby.signal and the primary's
conninfo) and starts as a hot standby. ``wait_ready`` creates the workloads' tables on the primary and
waits until every replica has them.

Tear-down shuts each server down fast (SIGINT: it removes its System V shared memory segment, which a
SIGKILL would leave behind on the host), then kills whatever is left, then removes the segments a
SIGKILLed server left: PostgreSQL removes a stale one at its next start only when it finds it by
postmaster.pid and the data directory's inode, which a power cut (``lose-unfsynced``) or the volatile
mount made under the directory changes. Only unattached segments created by a server this run started
(by its pid) are removed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from splitbrain import ConfigError, DataFiles, OneProcessPerNode, RemoteError, TargetEnv

BIN = "/usr/lib/postgresql/15/bin"
POSTGRES, INITDB, PG_BASEBACKUP = f"{BIN}/postgres", f"{BIN}/initdb", f"{BIN}/pg_basebackup"
SETPRIV = "/usr/bin/setpriv"
USER = "postgres"
PORT = 5432
ISOLATION_LEVELS = {"read-committed": "READ COMMITTED", "repeatable-read": "REPEATABLE READ",
                    "serializable": "SERIALIZABLE"}
READS = ("primary", "replicas")
WAL_SEGMENT = "[0-9A-F]" * 24  # a WAL segment's name (not a timeline's .history file)
SETUP_TIMEOUT_S = 60.0
SHUTDOWN_WAIT_S = 10.0
# $@: pids of servers the run started. Removes each unattached SysV segment one of them created.
REMOVE_SEGMENTS = r"""
ipcs -m -p | awk 'NR > 3 && NF >= 4 { print $1, $3 }' | while read -r id cpid; do
  for pid in "$@"; do
    [ "$cpid" = "$pid" ] || continue
    [ "$(ipcs -m -i "$id" | sed -n 's/.*nattch=\([0-9]*\).*/\1/p')" = 0 ] && ipcrm -m "$id"
  done
done
exit 0
"""

TABLES = ("CREATE TABLE IF NOT EXISTS lists (k bigint PRIMARY KEY, vals bigint[] NOT NULL)",
          "CREATE TABLE IF NOT EXISTS registers (k bigint PRIMARY KEY, v bigint)")


def as_postgres(argv: list[str]) -> list[str]:
    return [SETPRIV, f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--", *argv]


def conninfo(address: str, timeout_s: float) -> str:
    """libpq's connect_timeout is whole seconds, at least 2."""
    return (f"host={address} port={PORT} user={USER} dbname=postgres sslmode=disable application_name=splitbrain "
            f"connect_timeout={max(2, int(timeout_s + 0.999))}")


class PostgresTarget(OneProcessPerNode):
    """Killable, Pausable (one postgres server per node), HasPrimaries (node1), WaitsReady, HasDataFiles."""

    def __init__(self, env: TargetEnv, isolation: str, reads: str) -> None:
        self._init_nodes(env.addresses, env.data_root, env.spawn, env.files)
        self.isolation = isolation
        self.reads = reads
        self.primary = self.nodes[0]
        self.started: dict[str, list[int]] = {n: [] for n in self.nodes}  # each node's servers' pids

    def address(self, node: str) -> str:
        return self.addresses[node]

    def pgdata(self, node: str) -> str:
        return str(self.data_root / node / "pgdata")

    # -- Target ------------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        home = self.data_root / node
        self.files.make_dirs(node, home, mode=0o700)
        self._run(node, ["chown", f"{USER}:{USER}", str(home)], "setup.log")
        if self._run(node, as_postgres(["/usr/bin/test", "-w", str(home)]), "setup.log", check=False) != 0:
            raise ConfigError(f"target postgres: user {USER} (PostgreSQL refuses to run as root) cannot reach "
                              f"{home}: a directory above it is closed to other users; give --store a directory "
                              "every user may traverse (e.g. /var/tmp/splitbrain-runs)")
        if node == self.primary:
            self._run(node, as_postgres([INITDB, "-D", self.pgdata(node), "-U", USER, "--auth=trust", "-E", "UTF8",
                                         "--no-sync"]), "setup.log")
            self.files.write_text(node, f"{self.pgdata(node)}/pg_hba.conf",
                                  "host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n")
        else:
            self._wait_serving(self.primary, time.monotonic() + SETUP_TIMEOUT_S).close()
            self._run(node, as_postgres([PG_BASEBACKUP, "-h", self.address(self.primary), "-p", str(PORT), "-U", USER,
                                         "-D", self.pgdata(node), "-X", "stream", "-R", "--no-sync"]), "setup.log")
        self.start(test, node)

    def start(self, test: Any, node: str) -> None:
        super().start(test, node)
        handle = self._handle(node)
        if handle is not None and handle.pid not in self.started[node]:
            self.started[node].append(handle.pid)

    def teardown(self, test: Any, node: str) -> None:
        handle = self._handle(node)
        if handle is not None and handle.alive():
            try:
                handle.resume()  # a frozen server cannot shut down
                handle.kill(signal.SIGINT)  # fast shutdown: active txns rolled back, shared memory removed
                handle.wait(SHUTDOWN_WAIT_S)
            except Exception:  # noqa: BLE001 - the kill below is what must happen
                pass
        self.stop_process(node)
        if self.started[node]:
            self._run(node, ["sh", "-c", REMOVE_SEGMENTS, "sh", *map(str, self.started[node])], "teardown.log")

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        settings = {"listen_addresses": self.address(node), "port": str(PORT), "unix_socket_directories": "",
                    "max_connections": "200", "wal_level": "replica", "max_wal_senders": "10",
                    "hot_standby": "on", "fsync": "on", "synchronous_commit": "on", "logging_collector": "off",
                    "log_min_messages": "warning", "shared_buffers": "32MB", "max_standby_streaming_delay": "5s",
                    # hot keys deadlock often; the default 1 s before detection would stall workers past
                    # their timeout (a txn fails, never commits, either way: only the rate changes)
                    "deadlock_timeout": "50ms",
                    # keep the WAL a replica may still need: two base backups at once, or a replica cut off
                    # by a partition, would otherwise find its next segment recycled and never catch up
                    "wal_keep_size": "512MB"}
        argv = [POSTGRES, "-D", self.pgdata(node)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return as_postgres(argv), {}, "postgres.log"

    def data_files(self, test: Any, node: str) -> DataFiles:
        """PGDATA: the WAL segments (16 MB, zero-filled when made, every record CRC-checked), the tables'
        and catalogs' files (pages checksummed only with initdb --data-checksums, which is off by default
        and here) and pg_control."""
        return DataFiles(self.pgdata(node), logs=(f"pg_wal/{WAL_SEGMENT}",),
                         other=("base/*/[0-9]*", "global/[0-9]*", "global/pg_control"))

    def primaries(self, test: Any) -> list[str]:
        return [self.primary]

    def wait_ready(self, test: Any, timeout_s: float) -> None:
        """The tables exist on the primary and every replica has replayed them."""
        deadline = time.monotonic() + timeout_s
        with self._wait_serving(self.primary, deadline) as conn:
            conn.autocommit = True
            for statement in TABLES:
                conn.execute(statement)
        for node in self.nodes[1:]:
            with self._wait_serving(node, deadline) as conn:
                while conn.execute("SELECT to_regclass('registers') IS NOT NULL").fetchone() != (True,):
                    if time.monotonic() > deadline:
                        raise RemoteError(node, ["wait_ready"], "the replica did not replay the tables in time")
                    time.sleep(0.1)

    # -- helpers -----------------------------------------------------------------------------------------
    def _run(self, node: str, argv: list[str], log: str, *, check: bool = True) -> int | None:
        """Run a set-up program on the node to its end (through the spawner: it runs where the node is)."""
        handle = self.spawn(node, argv, {}, log)
        code = handle.wait(SETUP_TIMEOUT_S)
        if code is None:
            handle.kill(signal.SIGKILL)
            handle.wait(5)
        if check and code != 0:
            raise RemoteError(node, argv, f"exit code {code}; see nodes/{node}/{log}")
        return code

    def _wait_serving(self, node: str, deadline: float) -> psycopg.Connection[Any]:
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                return psycopg.connect(conninfo(self.address(node), 2), autocommit=True)
            except psycopg.Error as e:
                last = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            time.sleep(0.1)
        raise RemoteError(node, ["wait for postgres"], f"not serving: {last}")


def options_of(options: Mapping[str, Any]) -> tuple[str, str]:
    isolation = str(options.get("isolation", "serializable"))
    reads = str(options.get("reads", "primary"))
    if isolation not in ISOLATION_LEVELS:
        raise ConfigError(f"target postgres: isolation={isolation!r}; expected one of {', '.join(ISOLATION_LEVELS)}")
    if reads not in READS:
        raise ConfigError(f"target postgres: reads={reads!r}; expected one of {', '.join(READS)}")
    return isolation, reads
