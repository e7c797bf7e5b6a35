"""A plan file in TOML (stdlib tomllib) -> a Plan, every wrong key one line naming the file, the line and
the key.

    [plan]                         # optional: name (default: the file's stem), store (default: plans)
    name = "ci"

    [defaults]                     # optional: any test key, for every test (a test's own key wins)
    time_limit = 4
    nodes = 3

    [[test]]                       # one per test; the keys are PlanTest's fields (harness/plan/model.py)
    name = "raft-safe"
    targets = "raft"               # a value or a list: the matrix
    workloads = ["register", "lock"]
    nemesis = ["partition", "kill,pause"]
    seeds = [1, 2]
    expect = "valid"               # policy: all (default for valid) | most | any (default for invalid)

tomllib keeps no positions, so the lines come from harness/plan/key_lines.py.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.harness.plan.key_lines import key_lines, line_of
from splitbrain.harness.plan.model import TEST_KEYS, Plan, PlanError, PlanTest, cells

PLAN_KEYS = ("name", "store")
TOP_KEYS = ("plan", "defaults", "test")


class TomlOrigin:
    """Where a TOML plan's keys are, to name the line of a wrong one."""

    def __init__(self, path: str, lines: dict[tuple[str | int, ...], int],
                 from_defaults: list[set[str]]) -> None:
        self.path, self.lines, self.from_defaults = path, lines, from_defaults

    def line(self, test: int | None, key: tuple[str | int, ...]) -> int:
        if test is None:
            return line_of(self.lines, ("plan",) + key) if key else 1
        if key and test < len(self.from_defaults) and key[0] in self.from_defaults[test]:
            return line_of(self.lines, ("defaults",) + key)  # inherited: the wrong value is in [defaults]
        return line_of(self.lines, ("test", test) + key)

    def located(self, error: PlanError) -> ConfigError:
        where = "[plan]" if error.test is None else f"[[test]] #{error.test + 1}"
        if error.test_name:
            where += f" ({error.test_name})"
        key = f" key {'.'.join(map(str, error.key))}:" if error.key else ":"
        return ConfigError(f"{self.path}:{self.line(error.test, error.key)}: {where}{key} {error.message}")


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; expected one of {', '.join(known)}"


def load_plan(path: str | Path) -> Plan:
    """The plan in ``path``; ConfigError in one line when it cannot be read or is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    return parse_plan(text, str(path))


def parse_plan(text: str, path: str = "<plan>") -> Plan:
    """A plan from TOML text, its structure and every test's values checked (names are resolved later,
    by preflight); ConfigError ``path:line: ...``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = re.search(r"\(at line (\d+), column \d+\)", message)
        line = at.group(1) if at else "1"
        raise ConfigError(f"{path}:{line}: not valid TOML: {re.sub(r' ?[(]at .*[)]', '', message)}") from None
    lines = key_lines(text)

    def fail(message: str, key: tuple[str | int, ...]) -> ConfigError:
        return ConfigError(f"{path}:{line_of(lines, key)}: {message}")

    for key in data:
        if key not in TOP_KEYS:
            raise fail(f"{_unknown(key, TOP_KEYS)} (a plan has [plan], [defaults] and [[test]] tables)", (key,))
    head = _table(data.get("plan", {}), "[plan]", ("plan",), fail)
    for key in head:
        if key not in PLAN_KEYS:
            raise fail(f"[plan] {_unknown(key, PLAN_KEYS)}", ("plan", key))
    defaults = _table(data.get("defaults", {}), "[defaults]", ("defaults",), fail)
    default_keys = tuple(k for k in TEST_KEYS if k != "name")
    for key in defaults:
        if key not in default_keys:
            raise fail(f"[defaults] {_unknown(key, default_keys)}", ("defaults", key))
    entries = data.get("test")
    if entries is None:
        raise fail("no [[test]] tables: an empty plan tests nothing", ())
    if not isinstance(entries, list) or not all(isinstance(t, dict) for t in entries):
        raise fail("test: expected [[test]] tables (one per test)", ("test",))
    tests, from_defaults = [], []
    for i, entry in enumerate(entries):
        name = f" ({entry['name']})" if isinstance(entry.get("name"), str) else ""
        for key in entry:
            if key not in TEST_KEYS:
                raise fail(f"[[test]] #{i + 1}{name} {_unknown(key, TEST_KEYS)}", ("test", i, key))
        if "name" not in entry:
            raise fail(f"[[test]] #{i + 1}: key name missing: each test needs a name (its run folders, its "
                       "JUnit class)", ("test", i))
        from_defaults.append(set(defaults) - set(entry))
        tests.append(PlanTest(**{**defaults, **entry}))
    plan_name = head.get("name", re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem) or "plan")
    store = head.get("store", "plans")
    if not isinstance(store, str) or not store:
        raise fail(f"[plan] key store: expected a directory name, got {store!r}", ("plan", "store"))
    plan = Plan(name=plan_name, tests=tests, store=store, source=path,
                origin=TomlOrigin(path, lines, from_defaults))
    try:
        cells(plan)
    except PlanError as e:
        raise plan.origin.located(e) from None
    return plan


def _table(value: Any, what: str, key: tuple[str, ...], fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{what}: expected a table", key)
    return value
