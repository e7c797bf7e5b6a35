"""The run directory: runs/<test-name>/<timestamp>/ with everything a run leaves for a person to read.

    test.json       every option of the test, the seed included (enough to repeat it)
    history.jsonl   the history, appended and flushed op by op while the run goes
    results.json    the checkers' verdicts
    harness.log     the harness's own log
    nodes/<node>/   the nodes' logs
and runs/latest -> the newest run directory.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError

TEST_FILE, HISTORY_FILE, RESULTS_FILE, LOG_FILE = "test.json", "history.jsonl", "results.json", "harness.log"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def test_file(self) -> Path:
        return self.path / TEST_FILE

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def results_file(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def nodes_dir(self) -> Path:
        return self.path / "nodes"

    @property
    def run_id(self) -> str:
        """A short identifier for the run's own resources (namespaces, rules): unique per directory."""
        return self.path.name.replace("-", "").replace("T", "")[-10:]

    def write_test(self, test: dict[str, Any]) -> None:
        self.test_file.write_text(json.dumps(test, indent=2, sort_keys=True) + "\n")

    def read_test(self) -> dict[str, Any]:
        try:
            test = json.loads(self.test_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: not a run directory (no {TEST_FILE})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{self.test_file}: cannot read it ({e})") from None
        except (json.JSONDecodeError, RecursionError, ValueError) as e:
            line = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
            raise ConfigError(f"{self.test_file}{line}: invalid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(test, dict):
            raise ConfigError(f"{self.test_file}:1: expected a JSON object of the test's options, "
                              f"got {type(test).__name__}")
        return test

    def write_results(self, results: dict[str, Any]) -> None:
        self.write_json(RESULTS_FILE, results)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """``name`` in the run directory, replaced atomically (a reader never sees half of it)."""
        target = self.path / name
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        os.replace(tmp, target)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def new_run_dir(root: str | Path, test_name: str) -> RunDir:
    """A fresh directory for a run (absolute: targets resolve paths from their own working directories),
    and runs/latest pointing at it. The name is the time and a random suffix, so runs started at once
    (in parallel, by a plan) get distinct directories and run ids."""
    root = Path(root).absolute()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    while True:
        path = root / test_name / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
            break
        except FileExistsError:
            continue
    (path / "nodes").mkdir()
    point_latest(root, path)
    return RunDir(path)


def point_latest(root: Path, path: Path) -> None:
    """runs/latest -> ``path`` (atomically)."""
    latest = root / "latest"
    tmp = root / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(path.relative_to(root))
        os.replace(tmp, latest)
    except OSError:
        pass  # a filesystem without symlinks: runs/latest is a convenience only


def open_run_dir(path: str | Path) -> RunDir:
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"{p}: no such run directory")
    if p.is_symlink():
        p = p.resolve()
    run = RunDir(p)
    if not run.test_file.exists():
        raise ConfigError(f"{p}: not a run directory (no {TEST_FILE})")
    return run


def attach_log(run: RunDir, level: int = logging.INFO) -> logging.Handler:
    """A per-run file handler on the root logger: everything the harness logs lands in harness.log."""
    handler = logging.FileHandler(run.log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return handler


def detach_log(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
