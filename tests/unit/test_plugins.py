"""Targets and workloads are found by name the same way for the built-ins and for plugins; a broken
plugin is one line naming it and breaks nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from splitbrain.control.errors import ConfigError
from splitbrain.control.target import TargetSpec
from splitbrain.harness.plugins import PluginError, entries, load_target, load_workload
from splitbrain.harness.workloads import WorkloadSpec


def test_the_built_ins_are_registered_as_plugins_are() -> None:
    assert {"raft", "etcd", "zookeeper", "lb"} <= set(entries("target"))
    assert {"register", "lock", "set", "unique-ids"} <= set(entries("workload"))
    assert {"partition", "kill", "pause", "clock", "packet"} <= set(entries("nemesis"))
    assert all(e.origin == "splitbrain" for name, e in entries("target").items() if name in ("raft", "etcd"))
    assert isinstance(load_target("raft"), TargetSpec)
    assert isinstance(load_workload("register"), WorkloadSpec)


def fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> dict[str, str]:
    """A distribution visible through PYTHONPATH only (no pip): its metadata and its modules."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, text in modules.items():
        (root / f"{module}.py").write_text(text)
    return {**os.environ, "PYTHONPATH": str(root)}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_a_broken_plugin_is_one_line_and_the_rest_still_works(tmp_path: Path) -> None:
    env = fake_distribution(tmp_path, "brokenplugins", (
        "[splitbrain.targets]\nimportfails = broken_import:spec\nwrongshape = wrong_shape:spec\n"
        "raft = wrong_shape:spec\n"), {
        "broken_import": "import no_such_module_anywhere\n",
        "wrong_shape": "def spec():\n    return 42\n",
    })
    listing = cli("targets", env=env)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines() if line and not line.startswith(" ")}
    assert "BROKEN" in lines["importfails"] and "cannot import broken_import" in lines["importfails"]
    assert "plugin: brokenplugins" in lines["importfails"]
    assert "BROKEN" in lines["wrongshape"] and "is not a TargetSpec" in lines["wrongshape"]
    assert "BROKEN" not in lines["raft"] and "built-in" in lines["raft"]  # a plugin cannot replace a built-in
    assert "BROKEN" not in lines["etcd"]
    for name, expected in (("importfails", "cannot import broken_import: ModuleNotFoundError"),
                           ("wrongshape", "wrong_shape:spec is not a TargetSpec")):
        done = cli("run", "--target", name, "--store", str(tmp_path / "runs"), env=env)
        assert done.returncode == 3, done.stderr
        assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr
    help_text = cli("run", "--help", env=env)
    assert help_text.returncode == 0 and "importfails" in help_text.stdout  # listed next to the built-ins


def test_a_target_named_by_module_and_factory_is_loaded_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "mysystem.py").write_text(
        "import dataclasses\n"
        "from splitbrain import load_target\n"
        "def spec():\n"
        "    return dataclasses.replace(load_target('raft'), name='mysystem')\n")
    os.chdir(tmp_path)
    try:
        spec = load_target("mysystem:spec")
        assert spec.name == "mysystem" and "register" in spec.workloads
        with pytest.raises(PluginError, match="mysystem has no 'nope'"):
            load_target("mysystem:nope")
        with pytest.raises(ConfigError, match="expected package.module:attribute"):
            load_target(":spec")
    finally:
        os.chdir("/")
