"""What a report is drawn from: a run directory as it is on disk (complete, interrupted, failed, or still
half-written), or a history file with the results of checking it.

Reading never fails on a damaged run: what cannot be read becomes a note the report shows, and the rest is
drawn. Only a history given by hand that cannot be read is an error (HistoryFormatError, exit 3).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitbrain.harness.interpreter import TIME_ZERO_LOG
from splitbrain.harness.store import HISTORY_FILE, LOG_FILE, RESULTS_FILE, TEST_FILE
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.jsonl import iter_jsonl

REPORT_FILE = "report.html"
_TIME_ZERO = re.compile(re.escape(TIME_ZERO_LOG).replace("%s", r"(\S+)"))


@dataclass
class ReportInputs:
    title: str
    history: History | None
    results: dict[str, Any] | None     # results.json as stored: {"valid", <checker>: {...}, "explanation"}
    test: dict[str, Any] | None = None  # test.json as stored (None for a bare history)
    run_dir: Path | None = None
    history_file: Path | None = None
    time_zero: dt.datetime | None = None  # the wall clock at history time 0 (from harness.log)
    notes: list[str] = field(default_factory=list)  # what could not be read, in words

    @property
    def checkers(self) -> dict[str, dict[str, Any]]:
        """Each checker's result, by name (entries of results.json that are results)."""
        if not self.results:
            return {}
        return {k: v for k, v in self.results.items() if isinstance(v, dict) and "valid" in v}


def run_inputs(run_dir: Path) -> ReportInputs:
    """Everything a run directory holds, tolerating missing, half-written or broken files."""
    notes: list[str] = []
    test = _json_file(run_dir / TEST_FILE, notes)
    results = _json_file(run_dir / RESULTS_FILE, notes, missing=(
        "no results.json: the history was not checked (the run failed, was killed, or is still going)"))
    history_file = run_dir / HISTORY_FILE
    history = tolerant_history(history_file, notes)
    name = (test or {}).get("name") or run_dir.parent.name
    return ReportInputs(title=f"{name} {run_dir.name}", history=history, results=results, test=test,
                        run_dir=run_dir, history_file=history_file, time_zero=time_zero(run_dir / LOG_FILE),
                        notes=notes)


def history_inputs(history: History, results: dict[str, Any] | None, source: Path) -> ReportInputs:
    """A history from anywhere (JSONL, EDN, a Jepsen log) and what its check found."""
    return ReportInputs(title=source.name, history=history, results=results, history_file=source)


def _json_file(path: Path, notes: list[str], missing: str | None = None) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes.append(missing or f"no {path.name}")
        return None
    except (OSError, UnicodeDecodeError) as e:
        notes.append(f"{path.name} cannot be read: {e}")
        return None
    except json.JSONDecodeError as e:
        notes.append(f"{path.name}:{e.lineno}: invalid JSON ({e.msg}): a half-written or damaged file")
        return None
    if not isinstance(value, dict):
        notes.append(f"{path.name}: expected a JSON object, got {type(value).__name__}")
        return None
    return value


def tolerant_history(path: Path, notes: list[str]) -> History | None:
    """The ops of a run's history.jsonl up to the first line that cannot be read (a torn last line is
    what a killed harness leaves); None, with a note, when there is no usable history."""
    ops, lines = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            for op, line in iter_jsonl(fh, str(path)):
                ops.append(op)
                lines.append(line)
    except FileNotFoundError:
        notes.append(f"no {HISTORY_FILE}: the run ended before its first operation")
        return None
    except (OSError, UnicodeDecodeError) as e:
        notes.append(f"{HISTORY_FILE} cannot be read: {e}")
    except HistoryFormatError as e:
        notes.append(f"{e}; the {len(ops)} op(s) before it are shown")
    try:
        return History(ops, str(path), lines)
    except HistoryFormatError as e:
        notes.append(f"the history does not pair up: {e}")
        return None


def time_zero(log_file: Path) -> dt.datetime | None:
    """The wall-clock instant of history time 0, as the interpreter logged it; None for older runs."""
    try:
        with open(log_file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = _TIME_ZERO.search(line)
                if m:
                    try:
                        return dt.datetime.fromisoformat(m.group(1))
                    except ValueError:
                        return None
    except OSError:
        return None
    return None
