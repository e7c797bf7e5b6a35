"""Targets, workloads and fault kinds by name: the built-in ones and plugins, found the same way.

A name is looked up in the entry point groups ``splitbrain.targets``, ``splitbrain.workloads`` and
``splitbrain.nemeses`` of every installed distribution (splitbrain registers its own built-ins there, in
pyproject.toml), or given as ``package.module:attribute`` for code that is not installed (the current
directory is searched first, as ``python -m`` would). The object found is the spec itself (a TargetSpec,
a WorkloadSpec, a FaultKind) or a function of no arguments that returns it.

Nothing is imported until it is used: listing names reads only the entry points' metadata. A plugin that
cannot be loaded (an import error, the wrong shape) is a PluginError naming it in one line; other names,
and the rest of the command line, keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splitbrain.control.errors import ConfigError

GROUPS = {"target": "splitbrain.targets", "workload": "splitbrain.workloads", "nemesis": "splitbrain.nemeses"}


class PluginError(ConfigError):
    """A target, workload or fault kind that cannot be loaded or has the wrong shape."""


@dataclass(frozen=True)
class Entry:
    """A name and where it comes from (``splitbrain`` for the built-ins, else the distribution)."""

    name: str
    value: str       # "package.module:attribute"
    origin: str


def entries(kind: str) -> dict[str, Entry]:
    """Every registered name of ``kind`` (target | workload | nemesis), without importing any of them."""
    found: dict[str, Entry] = {}
    for ep in importlib.metadata.entry_points(group=GROUPS[kind]):
        origin = ep.dist.name if getattr(ep, "dist", None) is not None else "?"
        # The built-ins win a clash: a plugin cannot silently replace a target the user knows.
        if ep.name not in found or origin == "splitbrain":
            found[ep.name] = Entry(ep.name, ep.value, origin)
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    return list(entries(kind))


def _import_attribute(reference: str, what: str) -> Any:
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"{what}: expected package.module:attribute, got {reference!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # code that is not installed, next to where the user runs splitbrain
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any error in the plugin's import is the plugin's: one line
        raise PluginError(f"{what}: cannot import {module_name}: {type(e).__name__}: {e}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{what}: {module_name} has no {attribute!r}") from None
    return obj


def _resolve(reference: str, what: str, expected: type | tuple[type, ...], shape: str,
             check: Callable[[Any], bool] | None = None) -> Any:
    obj = _import_attribute(reference, what)
    ok = check if check is not None else (lambda o: isinstance(o, expected))
    if not ok(obj) and callable(obj):  # a factory (a function, or a class) of the spec
        try:
            obj = obj()
        except Exception as e:  # noqa: BLE001 - the plugin's factory failed: one line naming it
            raise PluginError(f"{what}: {reference}() raised {type(e).__name__}: {e}") from None
    if not ok(obj):
        raise PluginError(f"{what}: {reference} is not {shape} (got {type(obj).__name__})")
    return obj


def _lookup(kind: str, name: str) -> tuple[str, str]:
    """(reference, what) of a name or of a ``module:attribute`` reference."""
    if ":" in name:
        return name, f"--{kind} {name}"
    known = entries(kind)
    entry = known.get(name)
    if entry is None:
        choices = ", ".join(known) or "none"
        raise ConfigError(f"unknown --{kind} {name!r}; expected one of {choices}, or package.module:attribute")
    origin = "" if entry.origin == "splitbrain" else f" (plugin from {entry.origin})"
    return entry.value, f"{kind} {name}{origin}"


def load_target(name: str) -> Any:
    from splitbrain.control.target import TargetSpec

    reference, what = _lookup("target", name)
    return _resolve(reference, what, TargetSpec, "a TargetSpec (or a function returning one)")


def load_workload(name: str) -> Any:
    from splitbrain.harness.workloads import WorkloadSpec

    reference, what = _lookup("workload", name)
    return _resolve(reference, what, WorkloadSpec, "a WorkloadSpec (or a function returning one)")


def load_fault_kind(name: str) -> Any:
    from splitbrain.nemesis.kinds import FaultKind

    reference, what = _lookup("nemesis", name)
    return _resolve(reference, what, (), "a fault kind (name, needs, fault(nodes, rng), nemesis(ctx))",
                    check=lambda o: not isinstance(o, type) and isinstance(o, FaultKind))


def describe(kind: str) -> list[tuple[str, str, str]]:
    """(name, origin, description or the reason it cannot be loaded) of every registered name."""
    loaders = {"target": load_target, "workload": load_workload, "nemesis": load_fault_kind}
    rows = []
    for name, entry in entries(kind).items():
        try:
            obj = loaders[kind](name)
        except ConfigError as e:
            rows.append((name, entry.origin, f"BROKEN: {e}"))
            continue
        rows.append((name, entry.origin, getattr(obj, "description", "") or type(obj).__doc__ or ""))
    return rows
