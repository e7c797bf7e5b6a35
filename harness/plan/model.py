"""A test plan as data: tests as a matrix, what each is expected to give, and how its runs are judged.

    Plan(name, tests=[PlanTest(name, targets x workloads x nemesis sets x options, seeds, count,
                               expect valid|invalid, policy all|most|any, run settings)])
      -> cells(plan): one Cell per point of each test's matrix; a cell runs len(seeds) x count times
      -> verdict(policy, outcomes of its runs): pass | fail | unknown | error

A TOML plan (harness/plan/toml_plan.py) and a Python one are the same objects. Every check here needs
nothing but the plan itself; names are resolved (targets, workloads, fault kinds, target options) by
harness/plan/preflight.py before anything runs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.harness.test import MAX_SEED, TestOptions

EXPECTATIONS = ("valid", "invalid")
POLICIES = ("all", "most", "any")
DEFAULT_POLICY = {"valid": "all", "invalid": "any"}  # a safety test: every run; a bug hunt: one sighting
MAX_COUNT = 10_000
TEST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")

# A plan test's run settings -> the TestOptions field each sets (the names of `splitbrain run`'s options).
SETTINGS = {
    "time_limit": "time_limit", "nemesis_interval": "nemesis_interval", "nodes": "nodes", "remote": "remote",
    "concurrency": "concurrency", "rate": "rate", "recovery": "recovery_s", "client_timeout": "client_timeout_s",
    "bugs": "bugs", "ssh_hosts": "ssh_hosts", "ssh_user": "ssh_user", "ssh_key": "ssh_key",
    "ssh_known_hosts": "ssh_known_hosts", "ssh_accept_new": "ssh_accept_new", "ssh_dir": "ssh_dir",
}
_NUMBERS = {"time_limit", "nemesis_interval", "rate", "recovery", "client_timeout"}
_INTEGERS = {"nodes", "concurrency"}
_STRINGS = {"remote", "ssh_user", "ssh_key", "ssh_known_hosts", "ssh_dir"}
_STRING_LISTS = {"bugs", "ssh_hosts"}


class PlanError(ConfigError):
    """A wrong plan: ``test`` is the index of the test it is in (None: the plan itself), ``key`` the path
    of the wrong key within it, ``message`` what was expected. The TOML loader puts the file and the line
    in front; a Python plan names the test."""

    def __init__(self, message: str, test: int | None = None, key: tuple[str | int, ...] = (),
                 test_name: str | None = None) -> None:
        self.message, self.test, self.key, self.test_name = message, test, key, test_name
        where = f"test {test_name!r}" if test_name else (f"test #{test + 1}" if test is not None else "plan")
        super().__init__(f"{where}: {'.'.join(map(str, key)) + ': ' if key else ''}{message}")


@dataclass
class PlanTest:
    """One test of a plan: the matrix ``targets x workloads x nemesis x options`` (each a value or a list
    of them), each point run once per seed, ``count`` times; ``expect`` what every run should give and
    ``policy`` how many must (default: all for valid, any for invalid). A nemesis set is a comma list
    ("partition,kill"), a list of kinds, "none" or "all"; an options entry is a table of target options.
    The other fields are `splitbrain run`'s options (None: its default)."""

    name: str
    targets: Any = "raft"
    workloads: Any = "register"
    nemesis: Any = "none"
    options: Any = field(default_factory=dict)
    seeds: Any = 1
    count: int = 1
    expect: str = "valid"
    policy: str | None = None
    time_limit: float | None = None
    nemesis_interval: float | None = None
    nodes: int | None = None
    remote: str | None = None
    concurrency: int | None = None
    rate: float | None = None
    recovery: float | None = None
    client_timeout: float | None = None
    bugs: Any = None
    ssh_hosts: Any = None
    ssh_user: str | None = None
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    ssh_accept_new: bool | None = None
    ssh_dir: str | None = None


TEST_KEYS = tuple(f.name for f in fields(PlanTest))


@dataclass
class Plan:
    """A named list of tests; run folders go under ``store``/``name``/ (one folder per plan run)."""

    name: str
    tests: Sequence[PlanTest]
    store: str = "plans"
    source: str | None = None  # the file it was read from, if any
    origin: Any = field(default=None, repr=False, compare=False)  # where its keys are (a TOML plan's lines)

    def __post_init__(self) -> None:
        self.tests = list(self.tests)


@dataclass(frozen=True)
class Cell:
    """One point of a test's matrix: what one run is, but for its seed. ``name`` is unique in the plan
    (the test's name, plus each matrix value that varies within the test) and names its run folders."""

    name: str
    test: str
    test_index: int
    target: str
    workload: str
    nemesis: tuple[str, ...]
    options: Mapping[str, str]
    seeds: tuple[int, ...]
    count: int
    expect: str
    policy: str
    settings: Mapping[str, Any]

    @property
    def runs(self) -> int:
        return len(self.seeds) * self.count

    def test_options(self, seed: int, store: str) -> TestOptions:
        """The run of this cell with ``seed``, as `splitbrain run` would be given it."""
        return TestOptions(target=self.target, workload=self.workload, nemesis=self.nemesis, seed=seed,
                           store=store, name=self.name, target_opts=dict(self.options), **self.settings)

    def describe(self) -> str:
        parts = [self.target, self.workload, "+".join(self.nemesis) or "no faults"]
        parts += [f"{k}={v}" for k, v in self.options.items()]
        if self.settings.get("bugs"):
            parts.append("bug " + ",".join(self.settings["bugs"]))
        return " ".join(parts)


# -- checking and normalizing a test -------------------------------------------------------------------------

def _strings(value: Any, key: str, test: int, *, what: str = "a name") -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise PlanError(f"expected {what} or a list of them, got {_shown(value)}", test, (key,))
    if not items:
        raise PlanError("an empty list makes an empty matrix: give at least one", test, (key,))
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise PlanError(f"expected {what}, got {_shown(item)}", test, (key, i) if not isinstance(value, str) else (key,))
    return tuple(item.strip() for item in items)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def nemesis_set(spec: str | Sequence[str], test: int, key: tuple[str | int, ...]) -> tuple[str, ...]:
    """One nemesis set: "none", "all", "partition,kill" or ["partition", "kill"] -> the kinds' names
    (the built-in ones, or a plugin's; package.module:factory names are resolved later)."""
    from splitbrain.harness.plugins import names
    from splitbrain.nemesis.kinds import FAULT_KINDS

    if isinstance(spec, str):
        if spec.strip() == "none":
            return ()
        if spec.strip() == "all":
            return FAULT_KINDS
        kinds = [k.strip() for k in spec.split(",")]
    elif isinstance(spec, Sequence) and all(isinstance(k, str) for k in spec):
        kinds = [k.strip() for k in spec]
    else:
        raise PlanError(f"expected a nemesis set (\"partition,kill\", a list of kinds, \"none\" or \"all\"), "
                        f"got {_shown(spec)}", test, key)
    known = set(names("nemesis")) | set(FAULT_KINDS)
    if not kinds or any(not k for k in kinds):
        raise PlanError("an empty nemesis set: say \"none\" for no faults", test, key)
    unknown = [k for k in kinds if k not in known and ":" not in k]
    if unknown:
        raise PlanError(f"unknown fault kind {', '.join(unknown)}; expected none, all, or kinds of "
                        f"{', '.join(sorted(known))}", test, key)
    return tuple(dict.fromkeys(kinds))


def _nemesis_sets(value: Any, test: int) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, str):
        return (nemesis_set(value, test, ("nemesis",)),)
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise PlanError(f"expected a nemesis set or a list of them, got {_shown(value)}", test, ("nemesis",))
    if not value:
        raise PlanError("an empty list makes an empty matrix: give at least one nemesis set (\"none\" for "
                        "no faults)", test, ("nemesis",))
    return tuple(nemesis_set(item, test, ("nemesis", i)) for i, item in enumerate(value))


def _option_sets(value: Any, test: int) -> tuple[dict[str, str], ...]:
    tables = [value] if isinstance(value, Mapping) else value
    if not isinstance(tables, Sequence) or isinstance(tables, str | bytes):
        raise PlanError(f"expected a table of target options or a list of them, got {_shown(value)}", test,
                        ("options",))
    if not tables:
        raise PlanError("an empty list makes an empty matrix: give at least one table ({} for the target's "
                        "defaults)", test, ("options",))
    out = []
    for i, table in enumerate(tables):
        key: tuple[str | int, ...] = ("options",) if isinstance(value, Mapping) else ("options", i)
        if not isinstance(table, Mapping):
            raise PlanError(f"expected a table of target options, got {_shown(table)}", test, key)
        options = {}
        for name, v in table.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, int | float):
                v = str(v)
            elif not isinstance(v, str):
                raise PlanError(f"expected a string, number or boolean, got {_shown(v)}", test, key + (name,))
            options[str(name)] = v
        out.append(options)
    return tuple(out)


def _seeds(value: Any, test: int) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(items, range):
        items = list(items)
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise PlanError(f"expected a seed or a list of seeds, got {_shown(value)}", test, ("seeds",))
    if not items:
        raise PlanError("an empty list makes an empty matrix: give at least one seed", test, ("seeds",))
    for i, seed in enumerate(items):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise PlanError(f"expected a whole number from 0 to {MAX_SEED}, got {_shown(seed)}", test,
                            ("seeds",) if isinstance(value, int) else ("seeds", i))
    if len(set(items)) != len(items):
        raise PlanError("a seed is listed twice (use count for repeats)", test, ("seeds",))
    return tuple(items)


def _settings(t: PlanTest, test: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, option in SETTINGS.items():
        value = getattr(t, key)
        if value is None:
            continue
        if key in _NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise PlanError(f"expected a number, got {_shown(value)}", test, (key,))
        if key in _INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
            raise PlanError(f"expected a whole number, got {_shown(value)}", test, (key,))
        if key in _STRINGS and not isinstance(value, str):
            raise PlanError(f"expected a string, got {_shown(value)}", test, (key,))
        if key == "ssh_accept_new" and not isinstance(value, bool):
            raise PlanError(f"expected true or false, got {_shown(value)}", test, (key,))
        if key in _STRING_LISTS:
            value = _strings(value.split(",") if isinstance(value, str) else value, key, test)
        out[option] = float(value) if key in _NUMBERS else value
    return out


def _label(value: str) -> str:
    """A matrix value as part of a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-") or "x"


def cells_of(t: PlanTest, test: int) -> list[Cell]:
    """The cells of one test (PlanError naming the key when a value is wrong)."""
    if not isinstance(t.name, str) or not TEST_NAME.match(t.name) or ".." in t.name or t.name == "latest":
        raise PlanError(f"expected a name of 1-60 letters, digits, '_', '.', '-' (not 'latest', no '..'), got "
                        f"{_shown(t.name)}", test, ("name",))
    try:
        targets = _strings(t.targets, "targets", test)
        workloads = _strings(t.workloads, "workloads", test)
        nemeses = _nemesis_sets(t.nemesis, test)
        option_sets = _option_sets(t.options, test)
        seeds = _seeds(t.seeds, test)
        if isinstance(t.count, bool) or not isinstance(t.count, int) or not 1 <= t.count <= MAX_COUNT:
            raise PlanError(f"expected a whole number from 1 to {MAX_COUNT}, got {_shown(t.count)}", test, ("count",))
        if t.expect not in EXPECTATIONS:
            raise PlanError(f"expected one of {', '.join(EXPECTATIONS)}, got {_shown(t.expect)}", test, ("expect",))
        policy = t.policy if t.policy is not None else DEFAULT_POLICY[t.expect]
        if policy not in POLICIES:
            raise PlanError(f"expected one of {', '.join(POLICIES)}, got {_shown(t.policy)}", test, ("policy",))
        settings = _settings(t, test)
    except PlanError as e:
        raise PlanError(e.message, test, e.key, t.name) from None
    cells = []
    for target, workload, kinds, options in itertools.product(targets, workloads, nemeses, option_sets):
        parts = [t.name]
        if len(targets) > 1:
            parts.append(target)
        if len(workloads) > 1:
            parts.append(workload)
        if len(nemeses) > 1:
            parts.append("_".join(kinds) or "none")
        if len(option_sets) > 1:
            parts.append("_".join(f"{k}-{v}" for k, v in options.items()) or "defaults")
        cells.append(Cell(name="-".join(_label(p) for p in parts)[:100], test=t.name, test_index=test,
                          target=target, workload=workload, nemesis=kinds, options=options, seeds=seeds,
                          count=t.count, expect=t.expect, policy=policy, settings=settings))
    return cells


def cells(plan: Plan) -> list[Cell]:
    """Every cell of the plan, in the plan's order; PlanError for a wrong test or an empty plan."""
    if not isinstance(plan.name, str) or not TEST_NAME.match(plan.name):
        raise PlanError(f"name: expected 1-60 letters, digits, '_', '.', '-', got {_shown(plan.name)}")
    if not plan.tests:
        raise PlanError("no tests: an empty plan tests nothing")
    out: list[Cell] = []
    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    for i, t in enumerate(plan.tests):
        if not isinstance(t, PlanTest):
            raise PlanError(f"expected a PlanTest, got {_shown(t)}", i)
        if t.name in names:
            raise PlanError(f"test #{names[t.name] + 1} has this name too: give the tests distinct names", i,
                            ("name",), t.name)
        names[t.name] = i
        for cell in cells_of(t, i):
            if cell.name in seen:
                raise PlanError(f"its run folder {cell.name!r} is also test #{seen[cell.name] + 1}'s: give the "
                                "tests distinct names", i, ("name",), t.name)
            seen[cell.name] = i
            out.append(cell)
    return out


def located(plan: Plan, error: PlanError) -> ConfigError:
    """The error with the plan's file and the line of its key, when the plan came from a file."""
    if plan.origin is not None:
        return plan.origin.located(error)
    return error


# -- judging a cell by its runs ------------------------------------------------------------------------------

MET, MISSED, UNKNOWN, ERROR, NOT_RUN = "met", "missed", "unknown", "error", "not run"
PASS, FAIL = "pass", "fail"


def run_outcome(expect: str, valid: Any, *, error: bool = False, interrupted: bool = False) -> str:
    """One run against its expectation. A run that was stopped early proves nothing valid; what it found
    invalid stands. A run that failed (the harness, a node) is an error unless it had already found the
    history invalid."""
    if valid is False:
        return MET if expect == "invalid" else MISSED
    if error:
        return ERROR
    if valid is True and not interrupted:
        return MET if expect == "valid" else MISSED
    return UNKNOWN


def satisfied(policy: str, met: int, runs: int) -> bool:
    if policy == "all":
        return met == runs
    if policy == "most":
        return 2 * met > runs
    return met >= 1


def verdict(policy: str, outcomes: Sequence[str], runs: int | None = None) -> str:
    """A cell's verdict from its runs' outcomes (``runs``: how many it has in all, those not run yet
    included). pass: the policy is met; fail: it cannot be met even if every undecided run (unknown,
    error, not run) had met; otherwise error when a run failed, else unknown."""
    runs = len(outcomes) if runs is None else runs
    met = sum(1 for o in outcomes if o == MET)
    undecided = runs - met - sum(1 for o in outcomes if o == MISSED)
    if satisfied(policy, met, runs):
        return PASS
    if not satisfied(policy, met + undecided, runs):
        return FAIL
    return ERROR if ERROR in outcomes else UNKNOWN


EXIT_OF_VERDICTS = ((FAIL, 1), (ERROR, 4), (UNKNOWN, 2))


def plan_exit_code(verdicts: Sequence[str]) -> int:
    """0 every test met its expectation; else 1 when one failed, 4 when the harness failed on one, 2 when
    one is only unknown (in that order)."""
    for name, code in EXIT_OF_VERDICTS:
        if name in verdicts:
            return code
    return 0
