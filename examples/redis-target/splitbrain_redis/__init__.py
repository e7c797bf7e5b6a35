"""Redis with asynchronous replicas, as a splitbrain target: an example of a plugin written only against
splitbrain's public API (``from splitbrain import ...``), in a package of its own.

Layout: node1 runs the primary, every other node a replica (``replicaof node1``); each is Debian's
``redis-server`` started by the run's spawner (so kill, pause and clock skew reach it), with an
append-only file fsync'd on every write, data in the run's directory. Writes and compare-and-sets always
go to the primary. Reads go where the option ``reads`` says:

- ``primary`` (the default): the primary answers everything; a single copy, so linearizable under
  partitions, crashes and pauses (the append-only file brings acknowledged writes back after a crash);
- ``replicas``: each client reads from its own node, a replica answering from its own copy. Replication
  is asynchronous, and a replica cut off from the primary keeps serving what it has
  (``replica-serve-stale-data yes``, Redis's default): reads that miss acknowledged writes, which the
  register workload's linearizability check finds.

The ok/fail/info rule (splitbrain.Client): a request that never left this process (no connection) is
``fail``; a reply that says the operation was refused (a compare-and-set that did not match, an error
reply) is ``fail``; a write or cas sent without a reply (timeout, connection lost) is ``info``; a read
that does not come back ok is ``fail`` (it changed nothing). Nothing is retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import redis
from splitbrain import ConfigError, OneProcessPerNode, Op, RemoteError, TargetEnv, TargetSpec

PORT = 6379
REDIS_SERVER = "/usr/bin/redis-server"
READS = ("primary", "replicas")
# Compare-and-set as one atomic script on the primary: 1 when it matched and wrote, 0 when it did not.
CAS = """
local current = redis.call('get', KEYS[1])
if current == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 end
return 0
"""


class RedisTarget(OneProcessPerNode):
    """Killable and Pausable (one redis-server per node), HasPrimaries (node1), WaitsReady."""

    def __init__(self, env: TargetEnv, reads: str) -> None:
        self._init_nodes(env.addresses, env.data_root, env.spawn, env.files)
        self.reads = reads
        self.primary = self.nodes[0]

    def address(self, node: str) -> str:
        return self.addresses[node]

    # -- Target ------------------------------------------------------------------------------------------
    def setup(self, test: Any, node: str) -> None:
        self.files.make_dirs(node, self.data_root / node)
        self.start(test, node)

    def teardown(self, test: Any, node: str) -> None:
        self.stop_process(node)

    def launch(self, node: str) -> tuple[list[str], dict[str, str], str | None]:
        argv = [REDIS_SERVER, "--bind", self.address(node), "--port", str(PORT), "--protected-mode", "no",
                "--dir", str(self.data_root / node), "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--daemonize", "no", "--logfile", ""]
        if node != self.primary:
            argv += ["--replicaof", self.address(self.primary), str(PORT)]
        return argv, {}, "redis.log"

    def primaries(self, test: Any) -> list[str]:
        return [self.primary]

    def wait_ready(self, test: Any, timeout_s: float) -> None:
        """Until the primary answers and every replica has synchronized with it."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                if all(self._ready(node) for node in self.nodes):
                    return
                last = "a replica has not synchronized yet"
            except redis.RedisError as e:
                last = str(e)
            time.sleep(0.1)
        raise RemoteError("redis", ["wait_ready"], f"not ready in {timeout_s:.0f} s: {last}")

    def _ready(self, node: str) -> bool:
        with redis.Redis(self.address(node), PORT, socket_timeout=1, socket_connect_timeout=1) as r:
            info = r.info("replication")
        return node == self.primary or info.get("master_link_status") == "up"


class RegisterClient:
    """read / write / cas of the register workload; one connection per node it talks to."""

    def __init__(self, target: RedisTarget, node: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.primary = self._connection(target.address(target.primary))
        reads_at = target.primary if target.reads == "primary" else node
        self.reader = self.primary if reads_at == target.primary else self._connection(target.address(reads_at))

    def _connection(self, host: str) -> redis.Connection:
        # No retries, ever: a retried write whose first try took effect would be applied twice.
        return redis.Connection(host=host, port=PORT, socket_timeout=self.timeout_s,
                                socket_connect_timeout=self.timeout_s, retry_on_timeout=False,
                                retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0))

    def _call(self, conn: redis.Connection, *args: Any) -> Any:
        """Send one command and read its reply. ``NotSent`` when no connection could be made."""
        try:
            conn.connect()
        except redis.RedisError as e:
            raise NotSent(str(e)) from None
        try:
            conn.send_command(*args)
            return conn.read_response()
        except redis.RedisError:
            conn.disconnect()
            raise

    def invoke(self, test: Any, op: Op) -> Op:
        key = f"k{op.key}"
        try:
            if op.f == "read":
                value = self._call(self.reader, "GET", key)
                return op.with_(type="ok", value=None if value is None else int(value))
            if op.f == "write":
                self._call(self.primary, "SET", key, str(op.value))
                return op.with_(type="ok")
            if op.f == "cas":
                old, new = op.value
                matched = self._call(self.primary, "EVAL", CAS, 1, key, str(old), str(new))
                return op.with_(type="ok") if matched == 1 else op.with_(type="fail", error="value differs")
        except NotSent as e:
            return op.with_(type="fail", error=f"not connected: {e}")
        except redis.ResponseError as e:  # the server answered no: nothing was done
            return op.with_(type="fail", error=str(e))
        except redis.RedisError as e:
            return op.with_(type="fail" if op.f == "read" else "info", error=f"{type(e).__name__}: {e}")
        raise ValueError(f"the register workload has no op {op.f!r}")

    def close(self, test: Any) -> None:
        self.primary.disconnect()
        self.reader.disconnect()


class NotSent(Exception):
    """No byte of the request left this process."""


def _validate(options: Mapping[str, Any], nodes: int) -> None:
    if options.get("reads", "primary") not in READS:
        raise ConfigError(f"target redis: reads={options['reads']!r}; expected one of {', '.join(READS)}")


def spec() -> TargetSpec:
    """The entry point: what `splitbrain run --target redis` finds."""
    return TargetSpec(
        "redis",
        build=lambda env: RedisTarget(env, str(env.options.get("reads", "primary"))),
        clients={"register": lambda test, target, node: RegisterClient(target, node, test.client_timeout_s)},
        options={"reads": "primary (default: linearizable) | replicas (each client reads its own node: stale)"},
        validate=_validate, min_nodes=2, target_type=RedisTarget,
        description="Redis 7 with asynchronous replicas (example plugin)")
