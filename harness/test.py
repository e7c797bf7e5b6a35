"""A test as data, and running it: nodes up, target up, clients and faults, heal, check, clean up.

    Test (options + seed) -> run(test) -> RunOutcome(valid, run_dir, results)

Everything random comes from the test's seed: the fault schedule is drawn from it before the run starts
(and stored in test.json), the generators draw from one Random seeded by it, the nemeses from another.
Whatever happens -- an error, Ctrl-C -- every fault is healed and every node torn down before run returns.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

from splitbrain.checkers.availability import ENDS
from splitbrain.checkers.result import Result
from splitbrain.control.errors import ConfigError
from splitbrain.harness import interpreter
from splitbrain.harness.check_progress import check_progress
from splitbrain.harness.generator import (
    Once,
    Sleep,
    Stagger,
    Timed,
    TimeLimit,
    any_,
    clients,
    nemesis,
    phases,
)
from splitbrain.harness.report import write_report
from splitbrain.harness.store import RunDir, attach_log, detach_log, new_run_dir
from splitbrain.harness.workloads import WORKLOADS, workload_named
from splitbrain.histories.history import History
from splitbrain.histories.jsonl import JsonlWriter
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import completed
from splitbrain.nemesis.schedule import FAULT_KINDS, Step, fault_schedule, schedule_json

log = logging.getLogger("splitbrain.test")

REMOTES = ("local", "docker", "ssh")
HEAL = "heal"


@dataclass
class Test:
    """Every option of a run. ``schedule`` is filled from the seed unless given (repro replays it)."""

    target: str = "raft"
    workload: str = "register"
    nemesis: tuple[str, ...] = ()
    nodes: int = 5
    remote: str = "local"
    time_limit: float = 20.0
    nemesis_interval: float = 3.0
    concurrency: int = 10
    rate: float = 100.0
    seed: int = 0
    bugs: tuple[str, ...] = ()
    store: str = "runs"
    recovery_s: float = 2.0
    client_timeout_s: float = 1.5
    name: str = ""
    target_opts: dict[str, Any] = field(default_factory=dict)
    schedule: list[dict[str, Any]] | None = field(default=None)
    # --remote ssh: "node1=HOST[:PORT]" per node, the login, the key, and the host-key policy.
    ssh_hosts: tuple[str, ...] = ()
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    ssh_accept_new: bool = False
    ssh_dir: str = "/tmp"  # where each run keeps its files on the hosts (splitbrain-RUN_ID below it)

    def __post_init__(self) -> None:
        self.nemesis = tuple(self.nemesis)
        self.bugs = tuple(self.bugs)
        self.ssh_hosts = tuple(self.ssh_hosts)
        if not self.name:
            self.name = f"{self.target}-{self.workload}"

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(msg)

        from splitbrain.targets.registry import target_spec

        if self.workload not in WORKLOADS:
            raise bad(f"unknown --workload {self.workload!r}; expected one of {', '.join(WORKLOADS)}")
        target_spec(self.target).validate(self)
        if self.remote not in REMOTES:
            raise bad(f"--remote {self.remote!r} is not available; expected one of {', '.join(REMOTES)}")
        unknown = [k for k in self.nemesis if k not in FAULT_KINDS]
        if unknown:
            raise bad(f"unknown nemesis {', '.join(unknown)}; expected {', '.join(FAULT_KINDS)}")
        if not 1 <= self.nodes <= 9:
            raise bad(f"--nodes must be between 1 and 9, got {self.nodes}")
        if not 1 <= self.concurrency <= 200:
            raise bad(f"--concurrency must be between 1 and 200, got {self.concurrency}")
        for name in ("time_limit", "nemesis_interval", "rate", "client_timeout_s"):
            if getattr(self, name) <= 0:
                raise bad(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.recovery_s < 0:
            raise bad(f"--recovery must not be negative, got {self.recovery_s}")
        if self.remote == "ssh":
            self.validate_ssh()
        elif self.ssh_hosts or self.ssh_key or self.ssh_known_hosts or self.ssh_accept_new or self.ssh_dir != "/tmp":
            raise bad("the --ssh-* options go with --remote ssh")

    def validate_ssh(self) -> None:
        from splitbrain.control.local import node_names
        from splitbrain.control.ssh import parse_ssh_hosts

        if not self.ssh_hosts:
            raise ConfigError("--remote ssh needs --ssh-hosts node1=HOST[:PORT],node2=HOST[:PORT],...")
        hosts = parse_ssh_hosts(self.ssh_hosts)
        if len(hosts) != self.nodes:
            raise ConfigError(f"--ssh-hosts names {len(hosts)} hosts but --nodes is {self.nodes}")
        expected = node_names(self.nodes)
        if sorted(h.node for h in hosts) != sorted(expected):
            raise ConfigError(f"--ssh-hosts: expected the nodes {', '.join(expected)}, "
                              f"got {', '.join(h.node for h in hosts)}")
        if not self.ssh_user:
            raise ConfigError("--ssh-user must not be empty")
        if not self.ssh_dir.startswith("/") or any(c in self.ssh_dir for c in "\n\0"):
            raise ConfigError(f"--ssh-dir must be an absolute path on the hosts, got {self.ssh_dir!r}")
        for option, path in (("--ssh-key", self.ssh_key), ("--ssh-known-hosts", self.ssh_known_hosts)):
            if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                raise ConfigError(f"{option} {path}: no such readable file")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["nemesis"] = list(self.nemesis)
        d["bugs"] = list(self.bugs)
        d["ssh_hosts"] = list(self.ssh_hosts)
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Test:
        known = {f.name for f in fields(Test)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"test.json: unknown option(s) {', '.join(sorted(unknown))}")
        return Test(**d)


@dataclass
class RunOutcome:
    valid: Any
    run_dir: RunDir
    results: dict[str, Any]
    interrupted: bool = False


class HealingNemesis:
    """The run's nemeses, plus the op ``heal`` that heals all of them (the end of the fault phase)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def fs(self) -> set[str]:
        return self.inner.fs() | {HEAL}

    def setup(self, test: Any) -> None:
        self.inner.setup(test)

    def invoke(self, test: Any, op: Op) -> Op:
        if op.f == HEAL:
            try:
                self.inner.heal(test)
            except Exception as e:  # noqa: BLE001 - reported in the history and the log; heal is retried at the end
                return completed(op, None, error=f"heal failed: {e}")
            return completed(op, "healed")
        return self.inner.invoke(test, op)

    def heal(self, test: Any) -> None:
        self.inner.heal(test)


def _schedule(test: Test, nodes: list[str], rng: random.Random) -> list[Step]:
    if test.schedule is not None:
        return [Step.from_json(s) for s in test.schedule]
    return fault_schedule(test.nemesis, nodes, interval_s=test.nemesis_interval, duration_s=test.time_limit,
                          rng=rng, partition_kinds=("one", "halves", "majorities-ring", "primaries"))


def _build_nemesis(test: Test, cluster: Any, target: Any, clock: Any, rng: random.Random) -> Any:
    from splitbrain.nemesis.base import ComposedNemesis

    parts: list[Any] = []
    remotes = {n: cluster.remote(n) for n in cluster.nodes}
    if "partition" in test.nemesis:
        from splitbrain.nemesis.partition import PartitionNemesis
        parts.append(PartitionNemesis(remotes, cluster.addresses, rng, primaries=target.primaries))
    if "kill" in test.nemesis or "pause" in test.nemesis:
        from splitbrain.nemesis.process import ProcessNemesis
        parts.append(ProcessNemesis(target, cluster.nodes, rng))
    if clock is not None:
        parts.append(clock)
    if "packet" in test.nemesis:
        from splitbrain.nemesis.packet import PacketNemesis
        parts.append(PacketNemesis(remotes, rng))
    return HealingNemesis(ComposedNemesis(parts))


def _generator(test: Test, workload: Any, steps: list[Step]) -> Any:
    timed = Timed(tuple((int(s.at_s * 1e9), {"f": s.f, "value": s.value}) for s in steps))
    main = any_(clients(TimeLimit(test.time_limit, Stagger(1.0 / test.rate, workload.generator))),
                nemesis(timed))
    stages: list[Any] = [main, nemesis(Once({"f": HEAL, "value": None})), Sleep(test.recovery_s)]
    if workload.final is not None:
        stages.append(clients(workload.final))
    return phases(*stages)


class _Console:
    """One live line on stderr: elapsed, ops/s, ok/fail/info, active faults."""

    def __init__(self, stats: interpreter.Stats, enabled: bool) -> None:
        self.stats = stats
        self.enabled = enabled and sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def line(self) -> str:
        s = self.stats
        elapsed = time.monotonic() - s.started
        rate = (s.ok + s.fail + s.info) / elapsed if elapsed > 0 else 0.0
        faults = ", ".join(s.active_faults) or "none"
        return (f"{elapsed:6.1f}s  {rate:7.1f} ops/s  ok {s.ok}  fail {s.fail}  info {s.info}  "
                f"in flight {s.in_flight}  faults: {faults}")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            print("\r" + self.line()[:150].ljust(150), end="", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            print(file=sys.stderr)


class _FaultTracker:
    """Feeds the console's list of active faults from the nemesis ops as they are recorded."""

    STOPS = {end: start for start, end in ENDS.items()}  # the one fault vocabulary (checkers/availability.py)

    def __init__(self, stats: interpreter.Stats, sink: Any) -> None:
        self.stats = stats
        self.sink = sink

    def append(self, op: Op) -> None:
        self.sink(op)
        if op.is_client or op.type == "invoke":
            return
        if op.f == HEAL:
            self.stats.active_faults = []
        elif op.f in self.STOPS:
            started = self.STOPS[op.f]
            self.stats.active_faults = [f for f in self.stats.active_faults if not f.startswith(started)]
        else:
            self.stats.active_faults = self.stats.active_faults + [f"{op.f}"]


def run(test: Test, *, console: bool = True, out: Any = None) -> RunOutcome:
    """Run ``test`` end to end. Raises ConfigError before anything starts when an option is bad."""
    out = out or sys.stdout
    test.validate()
    if test.remote == "local":
        from splitbrain.control.local import require_root
        require_root()
    elif test.remote == "docker":  # refused before the run directory exists, as for local nodes
        from splitbrain.control.docker import require_node_image
        require_node_image()
    rng = random.Random(test.seed)
    nemesis_rng = random.Random(test.seed * 7919 + 1)
    run_dir = new_run_dir(test.store, test.name)
    handler = attach_log(run_dir)
    from splitbrain.control.local import node_names

    steps = _schedule(test, node_names(test.nodes), random.Random(test.seed * 31 + 7))
    test.schedule = schedule_json(steps)
    run_dir.write_test(test.to_json())
    print(f"seed {test.seed}  run {run_dir.path}", file=out, flush=True)
    log.info("test %s", json.dumps(test.to_json()))

    recorder = interpreter.ListRecorder()
    stats = interpreter.Stats()
    writer = JsonlWriter(str(run_dir.history_file))
    recorder.sink = _FaultTracker(stats, writer.write).append
    recorder.flush_sink = writer.flush
    cluster = _cluster(test, run_dir)
    workload = workload_named(test.workload, test)
    stop = threading.Event()
    interrupted = False
    failed = False
    nemesis_obj = None
    client_objs: dict[int, Any] = {}
    target = None
    console_line = _Console(stats, console)

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now (the finally below still heals)
        interrupted = True
        stop.set()
        print("\ninterrupted: healing and stopping (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        cluster.up()
        clock = None
        if "clock" in test.nemesis:
            from splitbrain.nemesis.clock import ClockNemesis
            clock = ClockNemesis()
        from splitbrain.targets.registry import target_spec

        spec = target_spec(test.target)
        spawn, files, data_root = _spawner(test, cluster, clock, run_dir)
        target = spec.build(test, cluster.addresses, spawn, data_root, files)
        with ThreadPoolExecutor(max_workers=test.nodes) as pool:
            list(pool.map(lambda n: target.setup(test, n), cluster.nodes))
        target.wait_ready(test, timeout_s=30)
        nemesis_obj = _build_nemesis(test, cluster, target, clock, nemesis_rng)
        nemesis_obj.setup(test)
        nodes_of = {t: cluster.nodes[t % test.nodes] for t in range(test.concurrency)}
        client_objs = {t: spec.client(test, target, nodes_of[t]) for t in range(test.concurrency)}
        console_line.start()
        interpreter.run(test, _generator(test, workload, steps), clients=client_objs, nemesis=nemesis_obj,
                        recorder=recorder, rng=rng, nodes_of=nodes_of, stop=stop, stats=stats,
                        drain_timeout=test.client_timeout_s * 3)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        console_line.stop()
        _teardown(test, nemesis_obj, client_objs, target, cluster)
        writer.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if failed:  # e.g. a host refused: the run's log handler must not catch the next run's lines
            write_report(run_dir, out=out)  # what there is: the history so far, harness.log
            detach_log(handler)
    try:
        with check_progress("the history"):
            result = workload.check(History(recorder.ops, str(run_dir.history_file)))
    finally:
        detach_log(handler)
    results = result.to_json()
    run_dir.write_results(results)
    _print_verdict(result, run_dir, test, out, interrupted)
    write_report(run_dir, out=out)
    return RunOutcome(result.valid, run_dir, results, interrupted)


def _cluster(test: Test, run_dir: RunDir) -> Any:
    """The run's nodes: namespaces on this machine, containers (--remote docker), or the SSH hosts of
    ``--ssh-hosts``."""
    if test.remote == "docker":
        from splitbrain.control.docker import DockerCluster

        return DockerCluster(run_dir.run_id, test.nodes, run_dir.nodes_dir, data_root=run_dir.path / "data")
    if test.remote == "ssh":
        from splitbrain.control.ssh import SSHCluster, parse_ssh_hosts
        from splitbrain.nemesis.packet import CHAIN_IN, CHAIN_OUT
        from splitbrain.nemesis.partition import CHAIN

        return SSHCluster(run_dir.run_id, parse_ssh_hosts(test.ssh_hosts), log_dir=run_dir.nodes_dir,
                          user=test.ssh_user, key_file=test.ssh_key, known_hosts=test.ssh_known_hosts,
                          accept_unknown_hosts=test.ssh_accept_new, base_dir=test.ssh_dir,
                          iptables_chains=[("INPUT", CHAIN), ("INPUT", CHAIN_IN), ("OUTPUT", CHAIN_OUT)])
    from splitbrain.control.local import LocalCluster

    return LocalCluster(run_dir.run_id, test.nodes, log_dir=run_dir.nodes_dir)


def _spawner(test: Test, cluster: Any, clock: Any, run_dir: RunDir) -> tuple[Any, Any, Path]:
    """How the target starts its processes, how it puts files on the nodes, and where it keeps its data.
    On SSH hosts the data and the config files stay on the hosts (written through SSH), which must have
    the target's programs (for the Raft store, the lb backends and the clock nemesis: this project and
    its Python too) at the same paths as this machine."""
    from splitbrain.control.remote import LocalFiles, RemoteFiles
    from splitbrain.control.spawn import local_spawner, ssh_spawner

    if test.remote == "ssh":
        return ssh_spawner(cluster, clock), RemoteFiles(cluster.remote), cluster.data_root
    if test.remote == "docker":
        from splitbrain.control.docker import docker_spawner

        # Absolute: the node resolves the path from its own working directory, and each node's data
        # directory is mounted in it at the same absolute path (so this machine's writes reach it).
        return docker_spawner(cluster, clock), LocalFiles(), cluster.data_root
    return local_spawner(cluster, clock), LocalFiles(), run_dir.path / "data"


def _teardown(test: Test, nemesis_obj: Any, client_objs: dict[int, Any], target: Any, cluster: Any) -> None:
    """Heal, close, stop, remove: each step runs even when an earlier one fails."""
    steps: list[tuple[str, Any]] = []
    if nemesis_obj is not None:
        steps.append(("heal the nemesis", lambda: nemesis_obj.heal(test)))
    steps += [(f"close client {t}", partial(c.close, test)) for t, c in client_objs.items()]
    if target is not None:
        steps += [(f"stop the target on {n}", partial(target.teardown, test, n)) for n in cluster.nodes]
    steps.append(("remove the nodes", cluster.down))
    for what, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - keep tearing down; the run's log says what failed
            log.error("teardown: could not %s: %s", what, e)


def _print_verdict(result: Result, run_dir: RunDir, test: Test, out: Any, interrupted: bool) -> None:
    label = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}[result.valid]
    note = " (interrupted)" if interrupted else ""
    print(f"{label}{note}  seed {test.seed}  {run_dir.path}", file=out)
    if result.valid is not True and result.explanation:
        print(result.explanation.strip(), file=out)


def analyze(run_dir: RunDir) -> RunOutcome:
    """Check a stored run's history again (with the checkers of its workload)."""
    from splitbrain.histories.jsonl import read_jsonl

    test = Test.from_json(run_dir.read_test())
    history = read_jsonl(str(run_dir.history_file))
    result = workload_named(test.workload, test).check(history)
    results = result.to_json()
    run_dir.write_results(results)
    write_report(run_dir)
    return RunOutcome(result.valid, run_dir, results)


def repro_test(run_dir: RunDir, store: str | None = None) -> Test:
    """The test of a stored run, to run again with the same seed and the same fault schedule."""
    test = Test.from_json(run_dir.read_test())
    if store is not None:
        test.store = store
    return test
