"""What ``splitbrain report`` and ``splitbrain check --report`` do, apart from parsing their options."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from splitbrain.control.errors import ConfigError
from splitbrain.harness.report import build_report, write_history_report
from splitbrain.harness.report.inputs import REPORT_FILE, history_inputs, run_inputs
from splitbrain.harness.report.summary import console_lines
from splitbrain.harness.store import HISTORY_FILE, TEST_FILE


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / TEST_FILE).is_file() or (path / HISTORY_FILE).is_file())


def report_command(path: str, out: str | None, format: str, stdout: Any) -> int:
    """Write the report of a run directory (RUN_DIR/report.html) or of a history file (./NAME.html);
    ``out`` overrides where. ConfigError / HistoryFormatError for what cannot be read or written."""
    from splitbrain.histories.formats import load_history

    given = Path(path)
    run_dir = given if _is_run_dir(given) else given.parent if (
        given.name == HISTORY_FILE and _is_run_dir(given.parent)) else None
    try:
        if run_dir is not None:
            run_dir = run_dir.resolve()
            if out is None:
                written, s = build_report(run_dir)
            else:
                from splitbrain.harness.report import render_report

                page, s = render_report(run_inputs(run_dir))
                written = _write(Path(out), page)
        else:
            if given.is_dir():
                raise ConfigError(f"{given}: not a run directory (no {TEST_FILE} or {HISTORY_FILE}) and not a history file")
            history = load_history(path, format)
            written = Path(out) if out else Path.cwd() / f"{given.stem}.html"
            s = write_history_report(history_inputs(history, None, given), written)
    except OSError as e:
        raise ConfigError(f"cannot write the report: {e}") from None
    print("\n".join(console_lines(s, str(written))), file=stdout)
    return 0


def _write(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def check_report(directory: str, history_path: str, history: Any, checker: str, result: Any,
                 command: list[str], taken: set[Path]) -> Path:
    """The report of one checked history: DIRECTORY/<history name>.html (-2, -3 ... when names repeat)."""
    folder = Path(directory)
    stem = Path(history_path).stem or "history"
    target = folder / f"{stem}.html"
    n = 2
    while target in taken:
        target = folder / f"{stem}-{n}.html"
        n += 1
    taken.add(target)
    results = {"valid": result.valid, checker: result.to_json()}
    try:
        write_history_report(history_inputs(history, results, Path(history_path)), target, shlex.join(command))
    except OSError as e:
        raise ConfigError(f"--report {directory}: cannot write {target.name}: {e}") from None
    return target


__all__ = ["REPORT_FILE", "check_report", "report_command"]
