"""The index of a store of runs: one row per run directory, from its small files only (test.json,
results.json, the last line of history.jsonl), cached by their sizes and modification times, so a page
over 1,000 runs costs a walk and a few stats per run, not a read of every history.

A run that cannot be read is a row that says so (broken, not checked, running); it never breaks the list.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from splitbrain.harness.store import HISTORY_FILE, RESULTS_FILE, TEST_FILE

MAX_DEPTH = 4           # store/<test>/<stamp>/ and plans a level or two deeper
RUNNING_S = 60          # a run without results whose history changed this recently may still be going
TAIL_BYTES = 8192


@dataclass(frozen=True)
class RunRow:
    path: str           # relative to the store, with "/"
    name: str
    date: str           # ISO, UTC
    target: str
    workload: str
    nemesis: str
    seed: str
    verdict: str        # valid | invalid | unknown | not checked | running | broken
    duration_s: float | None
    has_report: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _stamp_date(stamp: str, fallback: float) -> str:
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=dt.UTC).isoformat(timespec="seconds")
    except ValueError:
        return dt.datetime.fromtimestamp(fallback, dt.UTC).isoformat(timespec="seconds")


def last_op_time_s(history: Path) -> float | None:
    """The time of the history's last complete line, from its tail only."""
    try:
        with open(history, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()[1:] if size > TAIL_BYTES else tail.splitlines()):
        try:
            t = json.loads(line).get("time")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(t, int) and t >= 0:
            return t / 1e9
    return None


def _verdict(results: Any) -> str:
    v = results.get("valid") if isinstance(results, dict) else None
    if v is True or v is False:
        return "valid" if v else "invalid"
    return "unknown" if v == "unknown" else "broken"


def read_row(store: Path, run: Path) -> RunRow:
    """The row of one run directory, whatever state its files are in."""
    rel = run.relative_to(store).as_posix()
    notes = []
    test: dict[str, Any] = {}
    try:
        loaded = json.loads((run / TEST_FILE).read_text(encoding="utf-8"))
        test = loaded if isinstance(loaded, dict) else {}
        if not test:
            notes.append("test.json is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        notes.append(f"test.json: {type(e).__name__}")
    history = run / HISTORY_FILE
    try:
        results = json.loads((run / RESULTS_FILE).read_text(encoding="utf-8"))
        verdict = _verdict(results)
        if verdict == "broken":
            notes.append("results.json has no verdict")
    except FileNotFoundError:
        try:
            recent = time.time() - history.stat().st_mtime < RUNNING_S
        except OSError:
            recent = False
        verdict = "running" if recent else "not checked"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        verdict = "broken"
        notes.append(f"results.json: {type(e).__name__} (half-written?)")
    if not test:  # without its options a run cannot be repeated or analyzed: broken, whatever else it has
        verdict = "broken"
    nemesis = test.get("nemesis")
    try:
        mtime = run.stat().st_mtime
    except OSError:
        mtime = 0.0
    return RunRow(path=rel, name=str(test.get("name") or run.parent.name), date=_stamp_date(run.name, mtime),
                  target=str(test.get("target", "")), workload=str(test.get("workload", "")),
                  nemesis=", ".join(map(str, nemesis)) if isinstance(nemesis, list) else str(nemesis or ""),
                  seed=str(test.get("seed", "")), verdict=verdict, duration_s=last_op_time_s(history),
                  has_report=(run / "report.html").is_file(), note="; ".join(notes))


def is_run_dir(path: Path) -> bool:
    return (path / TEST_FILE).is_file() or (path / HISTORY_FILE).is_file()


def run_dirs(store: Path) -> list[Path]:
    """Run directories under ``store``: never following a symlink (runs/latest, or one that leads out),
    never descending into a run (its data/ and nodes/ are not runs)."""
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if is_run_dir(path):
                found.append(path)
            elif depth < MAX_DEPTH:
                walk(path, depth + 1)

    walk(store, 1)
    return found


def _signature(run: Path) -> tuple[Any, ...]:
    sig: list[Any] = []
    for name in (TEST_FILE, RESULTS_FILE, HISTORY_FILE, "report.html"):
        try:
            st = (run / name).stat()
            sig.append((st.st_mtime_ns, st.st_size))
        except OSError:
            sig.append(None)
    return tuple(sig)


class RunIndex:
    """Rows of every run in a store, re-read only for runs whose files changed since the last listing."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._cache: dict[Path, tuple[tuple[Any, ...], RunRow]] = {}
        self._lock = threading.Lock()

    def rows(self) -> list[RunRow]:
        with self._lock:
            runs = run_dirs(self.store)
            fresh: dict[Path, tuple[tuple[Any, ...], RunRow]] = {}
            for run in runs:
                sig = _signature(run)
                cached = self._cache.get(run)
                if cached is None or cached[0] != sig or cached[1].verdict == "running":
                    cached = (sig, read_row(self.store, run))
                fresh[run] = cached
            self._cache = fresh
            return sorted((row for _, row in fresh.values()), key=lambda r: r.date, reverse=True)
