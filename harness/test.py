"""A test: the objects it composes, and the option strings that build it.

    Test(target=TargetSpec, workload=..., nemesis=[FaultKind...], nodes=LocalNodes(5), ...)  -> run(test)
    TestOptions (the command line's strings; what test.json stores)  -> .build() -> Test

A Python user builds a ``Test`` by hand from the public API (``from splitbrain import ...``); the CLI
builds the same object from a ``TestOptions``. ``validate`` checks everything that can be checked before
anything of a run exists (limits, the target's options, capabilities the faults need, this machine's
ability to make the nodes, the store), so a bad input is one line and nothing is created.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from splitbrain.control.clusters import LocalNodes, Nodes, nodes_from_json, nodes_named
from splitbrain.control.errors import ConfigError
from splitbrain.control.target import ClientOpener, TargetSpec, capabilities_of
from splitbrain.harness.workloads import Workload, WorkloadSpec
from splitbrain.nemesis.schedule import MAX_STEPS, Step

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
MAX_SEED = 2**63 - 1


@dataclass
class Test:
    """Everything a run needs, as objects.

    ``target``: the system (TargetSpec); ``workload``: a Workload, a WorkloadSpec or ``test -> Workload``;
    ``nemesis``: the fault kinds (nemesis/kinds.py), each on its own cycle; ``nodes``: where the nodes are
    (LocalNodes, DockerNodes, SSHNodes); ``options``: the target's options; ``workload_options``: the
    workload's (a WorkloadSpec's ``options``, e.g. list-append's consistency-model). ``seed`` decides every random
    choice (None: drawn from the clock and printed); ``schedule`` replays a stored fault schedule.
    ``record`` is how to build this test again by name (test.json; what `repro` reads), when known.
    """

    target: TargetSpec
    workload: Workload | WorkloadSpec | Callable[[Test], Workload]
    nemesis: Sequence[Any] = ()
    nodes: Nodes = field(default_factory=LocalNodes)
    options: Mapping[str, Any] = field(default_factory=dict)
    time_limit: float = 20.0
    nemesis_interval: float = 3.0
    concurrency: int = 10
    rate: float = 100.0
    seed: int | None = None
    store: str | Path = "runs"
    name: str = ""
    recovery_s: float = 2.0
    client_timeout_s: float = 1.5
    schedule: Sequence[Step] | None = None
    record: dict[str, Any] | None = None
    repro_of: str | None = None
    workload_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nemesis = tuple(self.nemesis)
        self.options = dict(self.options)
        self.workload_options = dict(self.workload_options)
        if self.schedule is not None:
            self.schedule = [s if isinstance(s, Step) else Step.from_json(s) for s in self.schedule]

    @property
    def workload_name(self) -> str:
        w = self.workload
        return getattr(w, "name", None) or getattr(w, "__name__", "workload")

    @property
    def test_name(self) -> str:
        return self.name or f"{self.target.name}-{self.workload_name}"

    def make_workload(self) -> Workload:
        w = self.workload
        if isinstance(w, WorkloadSpec):
            w.check_options(self.workload_options)
        elif self.workload_options:
            raise ConfigError(f"workload {self.workload_name} takes no options (got "
                              f"{', '.join(sorted(self.workload_options))}); only a WorkloadSpec has options")
        if isinstance(w, Workload):
            return w
        made = w.make(self) if isinstance(w, WorkloadSpec) else w(self)
        if not isinstance(made, Workload):
            raise ConfigError(f"workload {self.workload_name}: its factory returned {type(made).__name__}, "
                              "not a Workload")
        return made

    def client_opener(self, workload: Workload) -> ClientOpener:
        if workload.client is not None:
            return workload.client
        opener = self.target.clients.get(workload.name)
        if opener is None:
            raise ConfigError(f"target {self.target.name} has no workload {workload.name!r}; expected one of "
                              f"{', '.join(self.target.workloads) or 'none'}")
        return opener

    def validate(self) -> Workload:
        """Every check that needs nothing of a run; ConfigError (HostError) in one line. Returns the
        workload, made once."""
        _limits(self)
        if not isinstance(self.target, TargetSpec):
            raise ConfigError(f"a test's target must be a TargetSpec, got {type(self.target).__name__}")
        self.target.check_options(self.options, self.nodes.count)
        workload = self.make_workload()
        self.client_opener(workload)
        if self.target.target_type is not None:
            check_capabilities(self.target.name, capabilities_of(self.target.target_type), self.nemesis)
        if not NAME.match(self.test_name) or ".." in self.test_name:
            raise ConfigError(f"--name {self.test_name!r}: expected 1-100 letters, digits, '_', '.', '-' "
                              "(no '/', no '..')")
        self.nodes.preflight()
        return workload

    def to_json(self) -> dict[str, Any]:
        """What test.json stores: the options that build this test again, its seed and its schedule."""
        record = dict(self.record) if self.record is not None else TestOptions.describe(self)
        record.update(seed=self.seed, store=str(self.store), name=self.test_name,
                      schedule=[s.to_json() for s in self.schedule] if self.schedule is not None else None)
        if self.repro_of is not None:
            record["repro_of"] = self.repro_of
        return record


def _finite(test: Test, name: str, option: str, low: float, high: float, *, low_inclusive: bool = False) -> None:
    value = getattr(test, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{option}: expected a finite number, got {value!r}")
    if not (low <= value if low_inclusive else low < value) or value > high:
        bound = f"{'at least' if low_inclusive else 'more than'} {low:g} and at most {high:g}"
        raise ConfigError(f"{option} must be {bound}, got {value:g}")


def _limits(test: Test) -> None:
    _finite(test, "time_limit", "--time-limit", 0, MAX_TIME_LIMIT_S)
    _finite(test, "nemesis_interval", "--nemesis-interval", 0, MAX_TIME_LIMIT_S)
    _finite(test, "rate", "--rate", 0, 1e6)
    _finite(test, "recovery_s", "--recovery", 0, 3600, low_inclusive=True)
    _finite(test, "client_timeout_s", "--client-timeout", 0, 600)
    if not isinstance(test.concurrency, int) or isinstance(test.concurrency, bool) or not 1 <= test.concurrency <= 200:
        raise ConfigError(f"--concurrency must be a whole number from 1 to 200, got {test.concurrency!r}")
    if test.seed is not None and (not isinstance(test.seed, int) or not 0 <= test.seed <= MAX_SEED):
        raise ConfigError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {test.seed!r}")
    if test.nemesis and len(test.nemesis) * test.time_limit / test.nemesis_interval > MAX_STEPS:
        raise ConfigError(f"--time-limit {test.time_limit:g} with --nemesis-interval {test.nemesis_interval:g} "
                          f"makes more than {MAX_STEPS} faults; give a longer interval or a shorter run")


def check_capabilities(target: str, capabilities: set[str], kinds: Sequence[Any]) -> None:
    """ConfigError naming the first fault kind whose needs the target does not implement."""
    for kind in kinds:
        missing = [n for n in getattr(kind, "needs", ()) if n not in capabilities]
        if missing:
            raise ConfigError(f"--nemesis {kind.name} needs a target that implements {', '.join(missing)}; "
                              f"target {target} does not")


def check_store(store: str | Path) -> Path:
    """The store as an absolute path, made if missing; ConfigError when it cannot hold runs (a file, a
    read-only place, /proc)."""
    path = Path(store).absolute()
    what = f"--store {store}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: exists and is not a directory")
    if str(path.resolve()).startswith(("/proc/", "/sys/", "/dev/")) or str(path.resolve()) in ("/proc", "/sys", "/dev"):
        raise ConfigError(f"{what}: not a place for run directories (a kernel file system)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".splitbrain-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{what}: not a writable directory ({e.strerror or e})") from None
    return path


# -- the command line's options ----------------------------------------------------------------------------

@dataclass
class TestOptions:
    """A test by names and strings: what the command line gives, what test.json stores, what `repro`
    reads. ``build()`` resolves the names (built-ins and plugins alike, harness/plugins.py)."""

    target: str = "raft"
    workload: str = "register"
    nemesis: tuple[str, ...] = ()
    nodes: int = 5
    remote: str = "local"
    time_limit: float = 20.0
    nemesis_interval: float = 3.0
    concurrency: int = 10
    rate: float = 100.0
    seed: int | None = None
    bugs: tuple[str, ...] = ()
    store: str = "runs"
    recovery_s: float = 2.0
    client_timeout_s: float = 1.5
    name: str = ""
    target_opts: dict[str, Any] = field(default_factory=dict)
    workload_opts: dict[str, Any] = field(default_factory=dict)
    schedule: list[dict[str, Any]] | None = None
    ssh_hosts: tuple[str, ...] = ()
    ssh_user: str = "root"
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    ssh_accept_new: bool = False
    ssh_dir: str = "/tmp"
    repro_of: str | None = None

    def __post_init__(self) -> None:
        self.nemesis = tuple(self.nemesis)
        self.bugs = tuple(self.bugs)
        self.ssh_hosts = tuple(self.ssh_hosts)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("nemesis", "bugs", "ssh_hosts"):
            d[name] = list(d[name])
        if d["repro_of"] is None:
            del d["repro_of"]
        return d

    @staticmethod
    def from_json(d: Any, where: str = "test.json") -> TestOptions:
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a JSON object of the test's options, got {type(d).__name__}")
        known = {f.name for f in fields(TestOptions)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        try:
            return TestOptions(**d)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None

    def target_options(self) -> dict[str, Any]:
        options = dict(self.target_opts)
        if self.bugs:
            options["bugs"] = ",".join(self.bugs)
        return options

    def build(self) -> Test:
        """The Test these options name (ConfigError/PluginError in one line when a name is unknown or a
        plugin cannot be loaded)."""
        from splitbrain.harness.plugins import load_fault_kind, load_target, load_workload

        spec = load_target(self.target)
        if self.bugs and "bugs" not in spec.options:
            raise ConfigError(f"--bug goes with targets that have deliberate bugs (raft); target {self.target} "
                              "has none")
        workload = load_workload(self.workload)
        kinds = [load_fault_kind(k) for k in self.nemesis]
        if spec.target_type is not None:
            capabilities = capabilities_of(spec.target_type)
            kinds = [k.for_target(capabilities) if hasattr(k, "for_target") else k for k in kinds]
        nodes = nodes_named(self.remote, self.nodes, ssh_hosts=self.ssh_hosts, ssh_user=self.ssh_user,
                            ssh_key=self.ssh_key, ssh_known_hosts=self.ssh_known_hosts,
                            ssh_accept_new=self.ssh_accept_new, ssh_dir=self.ssh_dir)
        return Test(target=spec, workload=workload, nemesis=kinds, nodes=nodes, options=self.target_options(),
                    time_limit=self.time_limit, nemesis_interval=self.nemesis_interval,
                    concurrency=self.concurrency, rate=self.rate, seed=self.seed, store=self.store,
                    name=self.name, recovery_s=self.recovery_s, client_timeout_s=self.client_timeout_s,
                    schedule=self.schedule, record=self.to_json(), repro_of=self.repro_of,
                    workload_options=self.workload_opts)

    @staticmethod
    def describe(test: Test) -> dict[str, Any]:
        """The options of a test built in Python: its objects by name (repro finds them again when they
        are registered)."""
        nodes = test.nodes.to_json()
        options = dict(test.options)
        bugs = options.pop("bugs", "")
        return TestOptions(
            target=test.target.name, workload=test.workload_name, nemesis=tuple(k.name for k in test.nemesis),
            nodes=nodes.get("nodes", test.nodes.count), remote=nodes.get("remote", "local"),
            time_limit=test.time_limit, nemesis_interval=test.nemesis_interval, concurrency=test.concurrency,
            rate=test.rate, seed=test.seed, bugs=tuple(b for b in str(bugs).split(",") if b),
            store=str(test.store), recovery_s=test.recovery_s, client_timeout_s=test.client_timeout_s,
            name=test.test_name, target_opts=options, workload_opts=dict(test.workload_options),
            ssh_hosts=tuple(nodes.get("ssh_hosts", ())), ssh_user=nodes.get("ssh_user", "root"),
            ssh_key=nodes.get("ssh_key"), ssh_known_hosts=nodes.get("ssh_known_hosts"),
            ssh_accept_new=bool(nodes.get("ssh_accept_new", False)), ssh_dir=nodes.get("ssh_dir", "/tmp"),
        ).to_json()


def nodes_of_record(record: Mapping[str, Any]) -> Nodes:
    """The Nodes a stored test used (for cleaning up after it), from its test.json."""
    return nodes_from_json({"remote": record.get("remote", "local"), "nodes": record.get("nodes", 5),
                            **{k: record[k] for k in ("ssh_hosts", "ssh_user", "ssh_key", "ssh_known_hosts",
                                                      "ssh_accept_new", "ssh_dir") if k in record}})
