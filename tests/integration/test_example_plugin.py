"""The example plugin (examples/redis-target): a target written only against the public API, installed as
a package of its own (.ci/setup installs it into the project's environment), run through the CLI and
through run() from a Python script; its unsafe configuration is caught and its safe one passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import needs_root

pytestmark = [pytest.mark.integration, needs_root,
              pytest.mark.skipif(not os.path.exists("/usr/bin/redis-server"),
                                 reason="needs redis-server (.ci/setup installs it)")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis-target"
RUN = ["--target", "redis", "--nodes", "3", "--time-limit", "8", "--nemesis-interval", "2", "--rate", "120"]


def splitbrain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", *args], capture_output=True, text=True,
                          timeout=200, cwd=cwd)


def test_the_example_is_installed_as_a_plugin(tmp_path: Path) -> None:
    listing = splitbrain("targets", cwd=tmp_path)
    line = next(line for line in listing.stdout.splitlines() if line.startswith("redis "))
    assert "plugin: splitbrain-redis" in line and "BROKEN" not in line
    assert "--target-opt reads=" in listing.stdout


@pytest.mark.timeout(400)
def test_reads_from_the_primary_pass_under_partitions_crashes_and_pauses(tmp_path: Path) -> None:
    done = splitbrain("run", *RUN, "--nemesis", "partition,kill,pause", "--seed", "1", "--store", "runs",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout


@pytest.mark.timeout(600)
def test_reads_from_replicas_are_caught_stale(tmp_path: Path) -> None:
    verdicts = []
    for seed in (1, 2, 3):  # caught on the first seed in every try here
        done = splitbrain("run", *RUN, "--nemesis", "partition", "--target-opt", "reads=replicas",
                          "--seed", str(seed), "--store", "runs", cwd=tmp_path)
        verdicts.append(done.returncode)
        if done.returncode == 1:
            assert "cannot linearize" in done.stdout
            break
    assert 1 in verdicts, f"stale replica reads not caught on seeds 1-{len(verdicts)}: {verdicts}"


@pytest.mark.timeout(600)
def test_the_python_api_runs_the_same_test(tmp_path: Path) -> None:
    script = EXAMPLE / "run_redis.py"
    caught = None
    for seed in (1, 2, 3):
        done = subprocess.run([sys.executable, str(script), "replicas", str(seed)], capture_output=True, text=True,
                              timeout=200, cwd=tmp_path)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        if done.returncode == 1:
            caught = seed
            break
    assert caught is not None, "run() of the unsafe configuration found nothing on seeds 1-3"
    safe = subprocess.run([sys.executable, str(script), "primary", "1"], capture_output=True, text=True,
                          timeout=200, cwd=tmp_path)
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert (tmp_path / "runs" / "latest" / "results.json").exists()
